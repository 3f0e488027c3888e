"""The experiment schema: one YAML file, six sections (model, data, method, training,
evaluation, output), every field typed and defaulted. `fintune validate` checks a file
against it; README.md has an annotated example.

New tasks (causal LM, SFT, DPO, ...) add a value to `task` and a recipe; the sections here
are shared, and task-specific fields stay optional.
"""

from __future__ import annotations

import os
import posixpath
import re
import types
import typing
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

SplitRole = Literal["train", "validation", "test"]
MIN_MAX_LENGTH = 8  # model.max_length: fewer tokens leave no room for a text
METRICS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
)
HeadlineMetric = Literal[
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
]
Metric = Literal[HeadlineMetric, "loss"]


class Section(BaseModel):
    """Unknown keys are errors, so a typo never silently falls back to a default. An integer
    given for a text field is that text (`name: 2024`, `labels: [0, 1]`); a decimal number is
    refused there, since YAML has already turned `1.10` into 1.1, and so is an empty text.
    Infinity and NaN are refused everywhere."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _integers_as_text(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key, value in data.items():
            field = cls.model_fields.get(key) if isinstance(key, str) else None
            if field is None:
                continue
            kinds = _text_kinds(field.annotation)
            if isinstance(value, bool) and _numeric_not_bool(field.annotation):
                out[key] = Refused(value, "a number")  # pydantic would read true as 1
            elif _bool_only(field.annotation) and not isinstance(value, bool | None):
                out[key] = Refused(value, "true or false")  # pydantic would read yes/on/1
            elif value is None and typing.get_origin(field.annotation) is dict:
                del out[key]  # `tags:` with every key commented out: the default, {}
            elif "str" in kinds and _is_int(value):
                out[key] = str(value)
            elif "str" in kinds and isinstance(value, str) and not value.strip():
                # `--set model.name=` would be this folder, `output.dir: ""` too
                out[key] = Refused(value, "text (leave the field out for its default)")
            elif "list" in kinds and isinstance(value, list):
                out[key] = [_text(v) for v in value]
            elif "dict" in kinds and isinstance(value, dict):
                out[key] = {_text(k): _text(v) for k, v in value.items()}
        return out


def _text(value: Any) -> Any:
    """A whole number as its text (`2024` -> "2024"); anything else as it is."""
    return str(value) if _is_int(value) else value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Refused:
    """A value pydantic would convert but the README does not allow: true/false for a
    number, or "yes", "off" or 1 for a switch. It fails validation, and the error says
    what was `expected`."""

    def __init__(self, value: Any, expected: str):
        self.value, self.expected = value, expected

    def __str__(self) -> str:
        return str(self.value).lower() if isinstance(self.value, bool) else repr(self.value)


def _members(annotation: Any) -> set[Any]:
    """The types a field takes, None left out: `int | None` -> {int}."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)  # X | Literal: Union
    args = set(typing.get_args(annotation)) if union else set()
    return args - {type(None)} or {annotation}


def _bool_only(annotation: Any) -> bool:
    return _members(annotation) == {bool}


def _numeric_not_bool(annotation: Any) -> bool:
    """A number field that does not also take true/false: pydantic would read `true` as 1."""
    members = _members(annotation)
    return bool(members & {int, float}) and bool not in members


def _text_kinds(annotation: Any) -> set[str]:
    """Where a field holds text: 'str' (str, str | None), 'list' (list[str]), 'dict' (values
    are str). A field that also takes integers (str | int) is left alone."""
    kinds = set()
    for member in _members(annotation):
        if member is str:
            kinds.add("str")
        elif typing.get_origin(member) is list and typing.get_args(member) == (str,):
            kinds.add("list")
        elif typing.get_origin(member) is dict and typing.get_args(member)[1:] == (str,):
            kinds.add("dict")
        elif member is int:
            return set()
    return kinds


def check_path(path: str | None) -> str | None:
    """A path the system can open: no NUL byte ('embedded null byte' later) and no name in
    it longer than the 255 bytes a file name may have ('File name too long' later)."""
    if path is None:
        return None
    if "\0" in path:
        raise ValueError(f"{path!r} contains a NUL byte, which no path may hold")
    for part in path.replace("\\", "/").split("/"):
        if len(os.fsencode(part)) > 255:
            raise ValueError(
                f"the name {part[:40]!r}... is {len(os.fsencode(part))} bytes, "
                "over the 255 a file or folder name may have"
            )
    return path


def expand_home(path: str | None) -> str | None:
    """`~/runs` means the home folder's runs, not a folder named `~`, and `$SCRATCH/runs`
    (or `${SCRATCH}`) that variable's runs; an unset variable is named, not made a folder."""
    if check_path(path) is None:
        return None
    return os.path.expanduser(_expand_variables(path))


def _expand_variables(text: str, quote=lambda value: value, within: str | None = None) -> str:
    """`$NAME` and `${NAME}` replaced by the variable's value, as `quote` writes it, and
    `$$` by `$`; an unset variable is an error naming it and what it is `within` (the text
    itself by default)."""

    def value(match: re.Match) -> str:
        if match[0] == "$$":
            return "$"
        name = match[1] or match[2]
        if name not in os.environ:
            shown = text if within is None else within
            raise ValueError(f"environment variable ${name} is not set (in {shown!r})")
        return quote(os.environ[name])

    return re.sub(r"\$(?:\$|(\w+)|\{(\w+)\})", value, text)


def escape_variables(path: str) -> str:
    """A path fintune resolved (a folder named `Q3$budget`), as a field that expands
    `$VARS` reads it back unchanged: each `$` doubled."""
    return path.replace("$", "$$")


def escape_local_uri(uri: str | None) -> str | None:
    """escape_variables for a URI whose path expand_local_uri would expand; a server's
    URI is kept as written (it is not expanded)."""
    if not uri or "$" not in uri:
        return uri
    escaped = escape_variables(uri)
    return escaped if expand_local_uri(escaped) == uri else uri


def expand_local_uri(uri: str | None) -> str | None:
    """A local store's URI (`sqlite:///~/runs.db`, `file:$SCRATCH/mlruns`, `~/mlruns`) with
    `~` and `$VARS` in its path expanded, as paths are; a server's URI is left as written
    (a `$` in its password is the password's)."""
    if not uri or not ("~" in uri or "$" in uri):
        return uri
    if uri.startswith("sqlite:///"):
        # SQLAlchemy reads the path percent-decoded up to a `?`: the user's part is already
        # written that way, so only what is put in is quoted
        def quoted(text: str) -> str:
            return text.replace("%", "%25").replace("?", "%3F")

        head, slash, rest = uri.removeprefix("sqlite:///").partition("/")
        if head.startswith("~") and os.path.expanduser(head) != head:
            head = quoted(os.path.expanduser(head))
        return "sqlite:///" + _expand_variables(head + slash + rest, quoted, uri)
    try:
        parts = urlsplit(uri)
    except ValueError:  # not a URL: the store names the problem before training
        return uri
    if parts.scheme == "file" and not parts.netloc:
        return "file:" + expand_home(parts.path)
    if not parts.scheme and not parts.netloc:
        return expand_home(uri)
    return uri


# --------------------------------------------------------------------------- model


class ModelConfig(Section):
    name: str = "all-minilm-l6-v2"
    """Packaged short name (see `fintune models`), hub id, local directory, or a .gguf file."""
    gguf_file: str | None = None
    """GGUF file inside the hub repo or directory given by `name`."""
    revision: str | None = None
    max_length: int = Field(128, ge=MIN_MAX_LENGTH, le=32768)
    """Longest tokenised input; longer texts are truncated. Batches are padded only to
    their own longest text, never to this length."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    attn_implementation: Literal["auto", "eager", "sdpa"] = "auto"
    trust_remote_code: bool = False

    @field_validator("name")
    @classmethod
    def _local_name_expanded(cls, name: str) -> str:
        # a hub id or packaged name holds neither a leading `~` nor a `$`
        return expand_home(name)

    @field_validator("gguf_file")
    @classmethod
    def _openable(cls, path: str | None) -> str | None:
        return check_path(path)


# --------------------------------------------------------------------------- data


class CleaningConfig(Section):
    """Each step is a switch, all off by default, applied in this order."""

    strip_html: bool = False
    strip_urls: bool = False
    strip_cashtags: bool = False
    letters_only: bool = False
    lowercase: bool = False
    remove_stopwords: bool = False
    lemmatize: bool = False


class SplitConfig(Section):
    use_given: bool = True
    """Use the source's own splits where it has them; make only the missing ones."""
    test: float = Field(0.2, ge=0.0, lt=1.0)
    """Fraction held out as test when the source has no test split: of all examples, or of
    train alone when the source has its own validation split."""
    validation: float = Field(0.1, ge=0.0, lt=1.0)
    """Fraction of the remaining examples held out as validation (when none is given)."""
    stratify: bool = True
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    """Seed of the split and subsampling; default: the experiment's seed. Fix it to vary
    the training seed while every run keeps the same test examples (paired comparisons)."""


class DataConfig(Section):
    dataset: str | None = None
    """A known dataset by name: financial_phrasebank, twitter_financial_news_sentiment,
    banking77. Loads from the hub unless `path` names a local copy."""
    subset: str | None = None
    """Variant of a known dataset, e.g. Financial PhraseBank agreement: 50, 66, 75, all."""
    path: str | None = None
    """A local file, or a directory (a known dataset's local copy, or split files)."""
    hub_id: str | None = None
    hub_config: str | None = None
    hub_revision: str | None = None
    """A branch, tag or commit of hub_id's dataset repository, for pinned data."""
    files: dict[SplitRole, str] | None = None
    """Given splits as files: {train: a.csv, validation: b.csv, test: c.csv}."""
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "fpb", "txt"] = "auto"
    encoding: str | None = None
    """Text encoding of local files; default utf-8 (fpb: utf-8, else latin-1 as released)."""
    quoting: Literal["standard", "none"] = "standard"
    """csv/tsv: `standard` reads quoted fields as pandas and Python's csv write them; `none`
    takes a quote as an ordinary character (a tsv export that does not quote)."""
    split_names: dict[SplitRole, str] = Field(default_factory=dict)
    """Which source split plays which role, e.g. {test: validation}."""
    text_column: str = "text"
    label_column: str = "label"
    labels: list[str] | None = Field(None, min_length=2)
    """Label order: the class id of a label is its position. Integer labels in the data
    are ids into this list, unless every one is a name in it ("-1", "0", "1"). Default: the
    known dataset's labels, else sorted labels (integers from 0 as ids, others as names)."""
    split: SplitConfig = Field(default_factory=SplitConfig)
    duplicates: Literal["keep", "drop"] = "keep"
    """Exact duplicate texts (same label) are always reported; `drop` keeps the first, and
    a text in two given splits stays only in the later of train, validation, test."""
    conflicts: Literal["keep", "drop"] = "keep"
    """Texts that occur with different labels are always reported; `drop` removes them."""
    cleaning: CleaningConfig = Field(default_factory=CleaningConfig)
    max_train_samples: int | None = Field(None, gt=0)
    """Stratified subsample of the training split, for quick tries."""
    max_eval_samples: int | None = Field(None, gt=0)

    @field_validator("path")
    @classmethod
    def _expand_path(cls, path: str | None) -> str | None:
        return expand_home(path)

    @field_validator("hub_id")
    @classmethod
    def _expand_hub_folder(cls, hub_id: str | None) -> str | None:
        # a downloaded dataset's folder may stand for the id; no hub id starts with '~'
        return os.path.expanduser(hub_id) if hub_id and hub_id.startswith("~") else hub_id

    @field_validator("files")
    @classmethod
    def _expand_files(cls, files: dict[str, str] | None) -> dict[str, str] | None:
        for role, file in (files or {}).items():
            try:
                check_path(file)
            except ValueError as error:
                raise ValueError(f"{role}: {error}") from None
        return files and {role: expand_home(file) for role, file in files.items()}

    def _set_among(self, *names: str) -> str | None:
        """The first of these fields set to other than its default, or None."""
        fields = type(self).model_fields
        return next((n for n in names if getattr(self, n) != fields[n].default), None)

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        given = [k for k in ("dataset", "path", "hub_id", "files") if getattr(self, k)]
        if not given:
            raise ValueError("name a data source: one of dataset, path, hub_id or files")
        if self.dataset and (self.files or self.hub_id):
            raise ValueError(
                "dataset cannot be combined with files or hub_id "
                "(dataset with path names a local copy)"
            )
        if self.files and (self.path or self.hub_id):
            raise ValueError("files cannot be combined with path or hub_id")
        if self.path and self.hub_id:
            raise ValueError("give either path or hub_id, not both")
        if self.subset is not None and not self.dataset:
            raise ValueError(
                "subset is read only with dataset (a known dataset's variant); "
                "a hub dataset's configuration is hub_config"
            )
        for name in ("hub_config", "hub_revision"):
            if getattr(self, name) is not None and not self.hub_id:
                raise ValueError(f"{name} is read only with hub_id")
        if self.dataset and (
            unread := self._set_among("format", "quoting", "text_column", "label_column")
        ):
            raise ValueError(
                f"{unread} is not read with dataset: a known dataset's files are read in its "
                "own format and columns; for files of your own, name them in path or files "
                "instead"
            )
        if self.dataset and not self.path and self._set_among("encoding"):
            raise ValueError(
                "encoding is read only with a local copy (dataset with path): without path "
                "the datasets library reads the hub copy's files itself"
            )
        if self.hub_id and (unread := self._set_among("format", "quoting", "encoding")):
            raise ValueError(
                f"{unread} is not read with hub_id: the datasets library reads a hub "
                "dataset's files itself; for files of your own, name them in path or files "
                "instead"
            )
        if self.text_column == self.label_column:
            raise ValueError(
                f"text_column and label_column are both {self.text_column!r}; the texts and "
                "the labels must be two different columns"
            )
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels must be distinct, got {self.labels}")
        return self


# --------------------------------------------------------------------------- methods


class FullMethod(Section):
    """Every weight is trained."""

    name: Literal["full"] = "full"


def _not_empty(targets: list[str] | str) -> list[str] | str:
    if targets == []:  # PEFT would stop with a traceback once the model has loaded
        raise ValueError("an empty list adapts no module; name at least one, or use auto")
    return targets


class LoraMethod(Section):
    name: Literal["lora"] = "lora"
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["auto", "all-linear"] = "auto"
    """`auto`: the attention projections of the backbone (query/value, q_proj/v_proj, ...)."""
    bias: Literal["none", "all", "lora_only"] = "none"

    @field_validator("target_modules")
    @classmethod
    def _some_targets(cls, targets: list[str] | str) -> list[str] | str:
        return _not_empty(targets)


class DoraMethod(LoraMethod):
    """LoRA with a learned magnitude per output feature (weight-decomposed LoRA)."""

    name: Literal["dora"] = "dora"  # type: ignore[assignment]


class QLoraMethod(LoraMethod):
    """LoRA on a frozen base quantised to 4-bit with bitsandbytes."""

    name: Literal["qlora"] = "qlora"  # type: ignore[assignment]
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"


class IA3Method(Section):
    name: Literal["ia3"] = "ia3"
    target_modules: list[str] | Literal["auto"] = "auto"
    feedforward_modules: list[str] | Literal["auto"] = "auto"

    @field_validator("target_modules")
    @classmethod
    def _some_targets(cls, targets: list[str] | str) -> list[str] | str:
        return _not_empty(targets)


class PrefixMethod(Section):
    name: Literal["prefix"] = "prefix"
    num_virtual_tokens: int = Field(20, gt=0)
    prefix_projection: bool = False
    encoder_hidden_size: int | None = Field(None, gt=0)
    """Hidden size of the reparametrisation MLP when prefix_projection is on."""

    @model_validator(mode="after")
    def _projection_size_needs_projection(self) -> PrefixMethod:
        if self.encoder_hidden_size is not None and not self.prefix_projection:
            raise ValueError("encoder_hidden_size is read only with prefix_projection: true")
        return self


class PromptMethod(Section):
    name: Literal["prompt"] = "prompt"
    num_virtual_tokens: int = Field(20, gt=0)
    init_text: str | None = None
    """Initialise the soft prompt from this text's embeddings instead of at random."""


class AdapterMethod(Section):
    """Bottleneck adapter: one after each feed-forward block (Pfeiffer et al.'s placement)."""

    name: Literal["adapter"] = "adapter"
    reduction_factor: int = Field(16, gt=0)
    non_linearity: Literal["relu", "gelu", "silu", "tanh"] = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


MethodConfig = Annotated[
    FullMethod
    | LoraMethod
    | DoraMethod
    | QLoraMethod
    | IA3Method
    | PrefixMethod
    | PromptMethod
    | AdapterMethod,
    Field(discriminator="name"),
]
METHOD_NAMES = ("full", "lora", "qlora", "dora", "ia3", "prefix", "prompt", "adapter")


# --------------------------------------------------------------------------- training


POLYNOMIAL_END = 1e-7  # where transformers' polynomial schedule ends (its lr_end)


class TrainingConfig(Section):
    learning_rate: float = Field(5e-5, gt=0.0)
    epochs: float = Field(3.0, gt=0.0)
    max_steps: int | None = Field(None, gt=0)
    """Stop after this many optimiser steps (overrides epochs)."""
    # bounded: a batch past sys.maxsize passed validate and stopped the first step
    batch_size: int = Field(16, gt=0, le=2**31 - 1)
    eval_batch_size: int = Field(64, gt=0, le=2**31 - 1)
    gradient_accumulation_steps: int = Field(1, gt=0, le=2**31 - 1)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_steps: int = Field(0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    """Warm-up as a fraction of all steps; give this or warmup_steps, not both."""
    scheduler: Literal[
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "constant",
        "constant_with_warmup",
        "inverse_sqrt",
    ] = "linear"
    cycles: int = Field(1, gt=0)
    """cosine_with_restarts: cosine cycles, each restarting at learning_rate (at least 2)."""
    max_grad_norm: float = Field(1.0, gt=0.0)
    eval_strategy: Literal["epoch", "steps"] = "epoch"
    eval_steps: int | None = Field(None, gt=0)
    logging_steps: int = Field(10, gt=0)
    early_stopping_patience: int | None = Field(None, gt=0)
    """Stop after this many evaluations without improvement of best_metric."""
    best_metric: Metric = "f1_macro"
    load_best_model: bool = True
    """Keep the checkpoint with the best validation best_metric, not the last."""
    class_weights: bool = False
    """Weight the training loss by inverse class frequency in the training split; the
    validation loss stays the plain cross-entropy."""
    group_by_length: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """auto: bf16 on a CUDA GPU that supports it, fp32 otherwise."""
    num_threads: int | None = Field(None, gt=0, le=4096)  # torch takes a C int
    """CPU threads for torch; default: torch's own choice."""

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        if self.warmup_steps and self.warmup_ratio:
            raise ValueError("give warmup_steps or warmup_ratio, not both")
        if self.eval_strategy == "steps" and self.eval_steps is None:
            raise ValueError("eval_strategy 'steps' needs eval_steps")
        if self.eval_strategy == "epoch" and self.eval_steps is not None:
            raise ValueError("eval_steps is read only with eval_strategy 'steps'; set both")
        if self.scheduler == "constant" and (self.warmup_steps or self.warmup_ratio):
            raise ValueError(
                "the constant scheduler has no warm-up; use scheduler 'constant_with_warmup'"
            )
        restarts = self.scheduler == "cosine_with_restarts"
        if restarts and self.cycles == 1:
            raise ValueError(
                "scheduler 'cosine_with_restarts' with cycles 1 is 'cosine': set cycles "
                "(the number of cosine cycles, at least 2) or use scheduler 'cosine'"
            )
        if not restarts and self.cycles != 1:
            raise ValueError("cycles is read only with scheduler 'cosine_with_restarts'")
        if self.scheduler == "polynomial" and self.learning_rate <= POLYNOMIAL_END:
            raise ValueError(
                f"learning_rate ({self.learning_rate:g}) with scheduler 'polynomial', which "
                f"decays to {POLYNOMIAL_END:g}: give a learning_rate above that"
            )
        return self


# --------------------------------------------------------------------------- evaluation, output


class EvaluationConfig(Section):
    """Validation is always evaluated, and test unless `test` is off."""

    bootstrap_samples: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    """Level of the extra `ci` interval; `ci95` is always reported too."""
    test: bool = True
    """Evaluate the test split too. A sweep's trials turn it off: they are chosen on
    validation, and only the final model is evaluated on test."""


class OutputConfig(Section):
    dir: str = "runs"
    """Parent folder; each run gets a new `<timestamp>-<name>` directory inside it."""
    save_model: bool = True

    @field_validator("dir")
    @classmethod
    def _expand_dir(cls, path: str) -> str:
        return expand_home(path)


# set by fintune on each logged run (tracking.log_run): a config's value would be overwritten
# or, for run_dir, would stand in for the run's own folder
FINTUNE_TAGS = (
    "mlflow.runName",
    "mlflow.parentRunId",
    "fintune.run_dir",
    "fintune.status",
    "fintune.metrics_sha256",
    "fintune.logged_by",
    "fintune.logged_by_started",
    "fintune.pruned",
)


class TrackingConfig(Section):
    """Every run is also logged to MLflow: parameters, per-step and final metrics, the
    report and plots as artifacts."""

    mlflow: bool = True
    uri: str | None = None
    """Tracking URI (http://host:5000, sqlite:///path.db, ...). Default: the environment's
    MLFLOW_TRACKING_URI, else an embedded store `mlflow.db` inside output.dir."""
    experiment: str | None = Field(None, max_length=500)  # MLflow's limits
    """MLflow experiment name; default: the config's name."""
    tags: dict[str, str] = Field(default_factory=dict)
    # "output" when a study or sweep filled `uri` in (its own mlflow.db), not the user
    _uri_from: str | None = PrivateAttr(default=None)

    @field_validator("uri")
    @classmethod
    def _not_redacted(cls, uri: str | None) -> str | None:
        try:
            parts = urlsplit(uri or "")
            password = parts.password
        except ValueError:  # not a URL: MLflow names the problem before training
            return uri
        # a query parameter's password or token (?token=t) is written *** as well
        hidden = [p.partition("=")[0] for p in re.split("[&;]", parts.query) if p.endswith("=***")]
        if password == "***" or hidden:
            token = password != "***" and hidden[0].lower() != "password"
            what = f"{hidden[0]}= is" if token else "the password is"
            raise ValueError(
                f"{what} '***', the placeholder a run's config.yaml records instead of the "
                "real one; give the URI with it (--set tracking.uri=...), or remove "
                "tracking.uri and set MLFLOW_TRACKING_URI"
            )
        return uri

    @field_validator("uri")
    @classmethod
    def _expand_local(cls, uri: str | None) -> str | None:
        return expand_local_uri(uri)

    @field_validator("tags")
    @classmethod
    def _tag_names(cls, tags: dict[str, str]) -> dict[str, str]:
        for key in tags:  # MLflow's rule for tag names, checked before training
            if not re.fullmatch(r"[\w\-. /:]{1,250}", key):
                raise ValueError(
                    f"tag name {key!r}: MLflow takes letters, digits, _ - . / : and spaces"
                )
            if key.startswith(("/", "..")) or posixpath.normpath(key) != key:
                raise ValueError(f"tag name {key!r}: MLflow takes no '/' first, '//', '..'")
            if key in FINTUNE_TAGS:  # MLflow refuses a second runName; the rest were lost
                raise ValueError(
                    f"tag name {key!r} is set by fintune on every run it logs; choose another name"
                )
        for key, value in tags.items():
            if len(value) > 8000:
                raise ValueError(
                    f"tag {key!r} has {len(value):,} characters; MLflow takes at most 8000 "
                    "characters"
                )
        return tags


SHORTHANDS = ("method", "model")  # sections a bare name may stand for: `method: lora`


class ExperimentConfig(Section):
    name: str = Field("experiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=80)
    task: Literal["classification"] = "classification"
    seed: int = Field(42, ge=0, le=2**32 - 1)  # what NumPy and scikit-learn take
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig
    method: MethodConfig = Field(default_factory=FullMethod)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        """`method: lora` means `method: {name: lora}` with defaults; `model: x` likewise."""
        for key in SHORTHANDS:
            if isinstance(data, dict) and isinstance(data.get(key), str):
                data = {**data, key: {"name": data[key]}}
        return data
