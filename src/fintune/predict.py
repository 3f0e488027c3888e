"""Load a finished run and classify texts the way the run saw them (same cleaning,
same truncation)."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Literal, get_args

import torch
import yaml
from pydantic import ValidationError
from safetensors import SafetensorError

from fintune.config.load import TOO_DEEP, parse_yaml
from fintune.config.schema import CleaningConfig
from fintune.data.clean import make_cleaner
from fintune.errors import FintuneError, NonFiniteScores
from fintune.evaluation.inference import half_dtype, length_sorted_batches, pads_on_the_left
from fintune.models import load_saved_classifier, pick_device
from fintune.models.load import MODEL_INFO, ModelInfo

Precision = Literal["fp32", "bf16", "int8"]
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
Device = Literal["auto", "cpu", "cuda"]  # or "cuda:N"
DEVICES: tuple[Device, ...] = get_args(Device)


class Predictor:
    def __init__(
        self,
        model,
        tokenizer,
        labels,
        max_length,
        cleaner=None,
        device="cpu",
        precision: Precision = "fp32",
    ):
        self.model, self.tokenizer = model, tokenizer
        self.labels, self.max_length = labels, max_length
        self.cleaner, self.device, self.precision = cleaner, device, precision

    @classmethod
    def from_run(
        cls, run_dir: Path, device: Device | str = "auto", precision: Precision = "fp32"
    ) -> Predictor:
        """`precision`: "fp32" computes as the run was evaluated. "bf16" runs the matrix
        products in bfloat16 (autocast; norms and softmax stay fp32): on CPUs with native
        bf16 (AVX512-BF16, AMX) or a GPU it is much faster, and probabilities move a little
        (by at most 0.03 on the foundation benchmark's 967 test sentences).
        "int8" quantises the linear layers (CPU only): faster, and labels can change.
        Measure agreement with the evaluated model before serving either.
        `device`: "auto" is the GPU when one is visible, else the CPU."""
        if precision not in PRECISIONS:
            choices = ", ".join(PRECISIONS)
            raise FintuneError(f"precision must be one of {choices}, not {precision!r}")
        _check_device(device)
        run_dir = Path(run_dir)
        cleaner = run_cleaner(run_dir)
        device = pick_device(device)
        _check_precision(precision, device)
        _check_model_info(run_dir / "model" / MODEL_INFO)
        try:
            model, tokenizer, info = load_saved_classifier(run_dir / "model", device)
        # a file missing, cut short, edited (valid JSON of another shape: KeyError ...)
        except (OSError, ValueError, SafetensorError, KeyError, TypeError, AttributeError) as error:
            raise FintuneError(
                f"{run_dir / 'model'}: cannot load the saved model (is the run complete?): "
                f"{type(error).__name__}: {error}"
            ) from None
        if precision == "int8":
            model = _quantize_int8(model, info.method)
        return cls(model, tokenizer, info.labels, info.max_length, cleaner, device, precision)

    def prepare(self, text: str) -> str:
        return prepare(text, self.cleaner)

    @torch.inference_mode()
    def __call__(self, texts: Iterable[str], batch_size: int = 16) -> list[dict]:
        """Texts are sorted by length and run in batches of similar length (a decoder's of
        equal length), so little compute goes to padding; results come back in input order."""
        if isinstance(texts, str):  # it would be read as a list of one-character texts
            raise FintuneError("Predictor takes a list of texts; give one text as [text]")
        # -1 ran no batch and returned {} for every text; 0 was range()'s ValueError
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise FintuneError(f"batch_size must be a whole number of at least 1: {batch_size!r}")
        texts = list(texts)  # a pandas Series, an array, a generator (read twice below)
        if not texts:
            return []
        texts = prepare_all(texts, self.cleaner)
        # one token over the limit tells a cut text from one exactly at it (as data.json
        # counts); only those are tokenised again, at the limit
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length + 1)
        cut = [len(ids) > self.max_length for ids in encoded["input_ids"]]
        if rows := [i for i, is_cut in enumerate(cut) if is_cut]:
            again = self.tokenizer(
                [texts[i] for i in rows], truncation=True, max_length=self.max_length
            )
            for key in encoded:
                for j, i in enumerate(rows):
                    encoded[key][i] = again[key][j]
        results: list[dict] = [{} for _ in texts]
        broken: list[int] = []  # texts whose outputs are NaN or infinite
        lengths = [len(ids) for ids in encoded["input_ids"]]
        for rows in length_sorted_batches(lengths, batch_size, pads_on_the_left(self.tokenizer)):
            batch = self.tokenizer.pad(
                {key: [encoded[key][i] for i in rows] for key in encoded},
                return_tensors="pt",
            ).to(self.device)
            kind = torch.device(self.device).type
            # as evaluation computed: half-precision weights under autocast in their dtype
            half = torch.bfloat16 if self.precision == "bf16" else half_dtype(self.model)
            with torch.autocast(kind, half or torch.bfloat16, enabled=half is not None):
                logits = self.model(**batch).logits
            logits = logits.float().cpu()
            broken += [
                i for i, finite in zip(rows, logits.isfinite().all(-1), strict=True) if not finite
            ]
            probs = torch.softmax(logits, dim=-1)
            # the largest logit, as a run's metrics count it: softmax can round a near tie
            for i, row, best in zip(rows, probs, logits.argmax(-1).tolist(), strict=True):
                results[i] = {
                    "label": self.labels[best],
                    "confidence": float(row[best]),
                    "scores": {name: float(p) for name, p in zip(self.labels, row, strict=True)},
                    "truncated": cut[i],
                }
        if broken:
            broken, why = sorted(broken), self._why_broken()
            message = _broken_message(broken, len(texts), why)
            raise NonFiniteScores(message, broken, len(texts), why)
        return results

    def _why_broken(self) -> str:
        if not all(p.isfinite().all() for p in self.model.parameters()):
            return "its weights hold NaN or infinite values: the run diverged, or a file is damaged"
        if self.precision != "fp32":
            return (
                f"its weights are finite: precision {self.precision} is the likely cause; try fp32"
            )
        return "its weights are finite"


def _broken_message(broken: list[int], total: int, why: str) -> str:
    numbers = [str(i + 1) for i in broken]
    if len(numbers) == 1:
        shown = f"text {numbers[0]}"
    elif len(numbers) <= 5:
        shown = f"texts {', '.join(numbers[:-1])} and {numbers[-1]}"
    else:
        shown = f"texts {', '.join(numbers[:5])}, ..."
    return (
        f"the model's outputs are NaN or infinite for {len(broken)} of {total} texts "
        f"({shown}), so they have no label: {why}"
    )


def check_run_dir(run_dir: Path) -> None:
    """A finished run with a saved model, or an error that says what the folder is."""
    if run_dir.exists() and not run_dir.is_dir():
        raise FintuneError(f"{run_dir} is a file; give a run directory (runs/<run>)")
    if not run_dir.is_dir():
        raise FintuneError(f"run directory not found: {run_dir}")
    if (run_dir / MODEL_INFO).is_file():
        run = run_dir.parent if run_dir.name not in ("", "..") else run_dir.resolve().parent
        raise FintuneError(f"{run_dir} is a run's model folder; give the run, {run}")
    if not (run_dir / "model").is_dir():
        raise FintuneError(f"{run_dir}: no model/ folder (not a finished run, or save_model off)")
    if not (run_dir / "config.yaml").is_file():  # it says how the run cleaned texts
        raise FintuneError(f"{run_dir}: no config.yaml (not a complete run directory)")
    if not (run_dir / "metrics.json").is_file():  # a run writes it last, after evaluating
        raise FintuneError(
            f"{run_dir}: no metrics.json (not a finished run: a run writes it last, so this "
            "one stopped or failed before the end, perhaps after its evaluation; run it again)"
        )


def _check_model_info(path: Path) -> None:
    """The model's description is JSON with the fields ModelInfo takes, or an error that
    names the file (ModelInfo(**...) would fail with a bare TypeError)."""
    if not path.is_file():
        return  # loading says so
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise FintuneError(f"{path}: cannot read the saved model's description ({error})") from None
    known = {field.name for field in fields(ModelInfo)}
    needed = {f.name for f in fields(ModelInfo) if f.default is MISSING}
    if not isinstance(info, dict) or not needed <= info.keys() or not info.keys() <= known:
        found = sorted(info) if isinstance(info, dict) else type(info).__name__
        raise FintuneError(
            f"{path}: not a saved model's description (needs {', '.join(sorted(needed))}; "
            f"found {found})"
        )


def run_cleaner(run_dir: Path):
    """The run's data.cleaning as a function (None when it cleans nothing), after checking
    that the folder is a finished run with a saved model."""
    check_run_dir(run_dir)
    path = run_dir / "config.yaml"
    config = read_run_config(run_dir)
    cleaning = (config.get("data") or {}).get("cleaning") or {}
    try:
        return make_cleaner(CleaningConfig.model_validate(cleaning))
    except ValidationError as error:
        problems = "; ".join(
            ".".join(["data.cleaning", *map(str, e["loc"])]) + f": {e['msg']}"
            for e in error.errors()
        )
        raise FintuneError(f"{path}: {problems}") from None


def read_run_config(run_dir: Path) -> dict:
    """The run's config.yaml as a mapping, or an error that names the file."""
    path = run_dir / "config.yaml"
    try:  # as every config is read: an alias bomb or deep nesting is refused here
        config = parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise FintuneError(f"{path}: not valid YAML ({error})") from None
    except RecursionError:
        raise FintuneError(f"{path}: not valid YAML (the file is {TOO_DEEP})") from None
    except UnicodeDecodeError as error:  # damaged, or replaced by another file
        raise FintuneError(f"{path}: not valid UTF-8 text ({error})") from None
    if not isinstance(config, dict) or not isinstance(config.get("data") or {}, dict):
        raise FintuneError(f"{path}: not a run's config (a mapping with data, model, ...)")
    return config


def prepare(text: str, cleaner) -> str:
    """The text as training saw it: stripped (decoders read the last token), then cleaned
    as the run's data.cleaning cleaned it."""
    text = text.strip()
    return cleaner(text) if cleaner else text


def prepare_all(texts: list[str], cleaner) -> list[str]:
    """Every text prepared; one that ends up empty is an error (training drops such texts,
    so a prediction for it would be made up), and so is one that is not a string or not
    valid Unicode. Texts are counted from 1."""
    for i, text in enumerate(texts, 1):
        if not isinstance(text, str):
            raise FintuneError(
                f"text {i} of {len(texts)} is a {type(text).__name__} ({text!r:.60}), "
                "not a string; Predictor takes a list of texts"
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            bad = text[error.start]
            what = (  # Python reads a byte of argv that is not UTF-8 as U+DC80..U+DCFF
                f"byte 0x{ord(bad) - 0xDC00:02x}"
                if "\udc80" <= bad <= "\udcff"
                else bad.encode("unicode_escape").decode() + " (a lone surrogate, not a character)"
            )
            raise FintuneError(
                f"text {i} of {len(texts)} is not valid UTF-8: {what} at character "
                f"{error.start + 1}; give texts in UTF-8"
            ) from None
    texts = [prepare(t, cleaner) for t in texts]
    empty = [i + 1 for i, t in enumerate(texts) if not t]
    if empty:
        raise FintuneError(
            f"text {empty[0]} of {len(texts)} is empty"
            + (" after the run's data.cleaning" if cleaner else "")
            + f" ({len(empty)} such text{'s' if len(empty) > 1 else ''})"
        )
    return texts


def _quantize_int8(model, method: str):
    """Dynamic int8 for the plain linear layers. LoRA and DoRA are folded into the base
    first. Layers a PEFT adapter wraps, and hooked layers with our bottleneck adapters,
    stay float with everything inside them: the adapters read their weights' dtype or
    need the hook, which an int8 replacement would drop."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    if method == "qlora":
        raise FintuneError("precision int8: this run's base is already 4-bit (qlora)")
    if convolutions := sorted({type(m).__name__ for m in model.modules() if _is_conv1d(m)}):
        raise FintuneError(
            f"precision int8: this model's layers are {', '.join(convolutions)} (GPT-2's "
            "linear layers), which dynamic int8 does not quantise: only the head would be "
            "int8; serve it in fp32, or bf16 where the machine has it"
        )
    if method in ("lora", "dora"):
        model = model.merge_and_unload()
    model = model.float()  # int8 kernels take float32; a run may have trained in bf16
    wrapped = {
        id(inner)
        for module in model.modules()
        if isinstance(module, BaseTunerLayer) or module._forward_hooks
        for inner in module.modules()
    }
    plain = {
        name
        for name, module in model.named_modules()
        if type(module) is torch.nn.Linear and id(module) not in wrapped
    }
    with warnings.catch_warnings():
        # torch 2.13 (pinned) still runs eager int8 and warns on every start that it will
        # move to torchao; the README says what that means for users
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor.*deprecated", UserWarning)
        return torch.ao.quantization.quantize_dynamic(model, plain, dtype=torch.qint8)


def _is_conv1d(module: torch.nn.Module) -> bool:
    from transformers.pytorch_utils import Conv1D

    return isinstance(module, Conv1D)


def _check_device(device: str) -> None:
    """auto, cpu, cuda, or cuda:N for one GPU of several; a GPU that is not there is refused."""
    if device not in DEVICES and not re.fullmatch(r"cuda:\d+", device):
        raise FintuneError(f"device must be one of {', '.join(DEVICES)} or cuda:N, not {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise FintuneError(f"device {device}: no CUDA GPU is visible; use --device cpu or auto")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise FintuneError(
            f"device {device}: only {torch.cuda.device_count()} GPU(s) visible, counted from 0"
        )


def _check_precision(precision: Precision, device: str) -> None:
    """Refuse, before loading anything, a precision this device would run slowly or not at all."""
    kind = torch.device(device).type
    if precision == "int8" and kind != "cpu":
        raise FintuneError(
            "precision int8 is for CPU serving: add --device cpu, or on a GPU use fp32 or bf16"
        )
    if precision == "bf16" and kind == "cpu" and not cpu_has_native_bf16():
        raise FintuneError(
            "precision bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX), so bf16 "
            "would be emulated and slower than fp32; use --precision fp32 or int8"
        )
    if precision == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise FintuneError(
            "precision bf16: this GPU does not support bfloat16; use --precision fp32"
        )


def cpu_has_native_bf16() -> bool:
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
