"""Load a tokenizer and a sequence classifier (encoder or decoder), apply the method,
save it in standard formats, and load a saved run back for prediction.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from safetensors import SafetensorError
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GgufConfig,
)

from fintune.config.schema import ExperimentConfig, FullMethod, QLoraMethod
from fintune.errors import FintuneError
from fintune.models.bottleneck import (
    CONFIG_FILE,
    LOADER_CLASS,
    WEIGHTS_FILE,
    load_bottleneck,
    save_bottleneck,
)
from fintune.models.checks import check_built, check_init_text_fits, is_local
from fintune.models.methods import (
    HEAD_NAMES,
    TOP_LEVEL_HEAD_NAMES,
    apply_method,
    head_modules,
    head_prefixes,
)
from fintune.models.registry import (
    PACKAGED,
    ModelSource,
    check_no_tokenizer_beside,
    resolve_model,
    weights_fingerprint,
)
from fintune.models.standalone_bottleneck import head_in_float32, quiet_load_report

MODEL_INFO = "fintune_model.json"
console = Console(stderr=True, soft_wrap=True)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ModelInfo:
    """What it takes to rebuild the classifier; saved next to the weights."""

    method: str
    base: str
    gguf_file: str | None
    hub_id: str | None
    labels: list[str]
    max_length: int
    padding_side: str
    is_decoder: bool
    method_settings: dict[str, Any]
    # how the base was loaded, so adapter runs rebuild on the same weights and dtype
    revision: str | None = None
    trust_remote_code: bool = False  # recorded only: loading a run never runs hub code
    dtype: str = "auto"
    packaged: str | None = None  # a packaged base's short name: found again if its path moves


def pick_device(choice: str) -> str:
    if choice == "cuda" and not torch.cuda.is_available():
        raise FintuneError("training.device: 'cuda' was asked for but no CUDA GPU is visible")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def load_tokenizer(source: ModelSource, config: ExperimentConfig):
    check_no_tokenizer_beside(source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source.name_or_path,
            gguf_file=source.gguf_file,
            revision=config.model.revision,
            trust_remote_code=config.model.trust_remote_code,
        )
    except (OSError, ValueError) as err:
        raise _cannot_load("a tokenizer from ", source, err) from None
    # a folder without tokenizer files still gives a tokenizer (built from config.json)
    # whose only tokens are the special ones: every word would be read as unknown
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
        raise FintuneError(
            f"model.name: the tokenizer of {source.name_or_path} has no vocabulary, only "
            f"{len(tokenizer)} special tokens; is a tokenizer saved there (tokenizer.json, "
            "vocab.txt, ...)? Save one with tokenizer.save_pretrained into that folder"
        )
    if tokenizer.pad_token is None:  # decoders (GPT-2, Llama, ...) have none
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if tokenizer.pad_token is None:
        raise FintuneError(
            f"model.name: the tokenizer of {source.name_or_path} has no pad, eos or unk token "
            "to pad a batch with; give it one and save it into the model's folder, e.g. "
            "tokenizer.pad_token = '<pad>' (a token of its vocabulary) then "
            "tokenizer.save_pretrained(folder)"
        )
    return tokenizer


def _cannot_load(what: str, source: ModelSource, err: Exception) -> FintuneError:
    """The error of a failed load, naming the GGUF file where there is one and, for a GGUF
    architecture transformers cannot read, the ones it can."""
    where = source.name_or_path
    if source.gguf_file:
        where = f"{where.rstrip('/')}/{source.gguf_file}"
    unknown = re.match(r"GGUF model with architecture (\S+) is not supported", str(err))
    if unknown:
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

        known = sorted(set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer"})
        return FintuneError(
            f"model.name: {where}: GGUF architecture {unknown[1]} is not one transformers "
            f"can load; it loads GGUF files of one of {', '.join(known)}"
        )
    return FintuneError(f"model.name: cannot load {what}{where}: {err}")


def load_classifier(config: ExperimentConfig, labels: list[str], device: str):
    """(model with method applied, tokenizer, ModelInfo)."""
    source = resolve_model(config.model.name, config.model.gguf_file)
    tokenizer = load_tokenizer(source, config)
    head_labels = _checkpoint_head_labels(source, config)
    method = config.method
    kwargs: dict[str, Any] = {
        **_label_kwargs(labels),
        "revision": config.model.revision,
        "trust_remote_code": config.model.trust_remote_code,
        # a checkpoint that already has a head for another label count gets a new head
        "ignore_mismatched_sizes": True,
    }
    if source.gguf_file:
        kwargs |= gguf_dequantised(source.gguf_file)
    if config.model.dtype != "auto":
        kwargs["dtype"] = DTYPES[config.model.dtype]
    elif isinstance(method, FullMethod):  # not a bfloat16 checkpoint's own: see check_dtype
        kwargs["dtype"] = torch.float32
    if config.model.attn_implementation != "auto":
        kwargs["attn_implementation"] = config.model.attn_implementation
    if isinstance(method, QLoraMethod):
        kwargs["quantization_config"] = _four_bit(method, device)
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForSequenceClassification.from_pretrained(source.name_or_path, **kwargs)
        _no_cpu_repacking(model)
    except ImportError as err:
        raise FintuneError(f"method {method.name}: cannot run here: {err}") from None
    except (OSError, ValueError, SafetensorError, struct.error) as err:  # a file damaged since
        raise _cannot_load("", source, err) from None
    _drop_gguf_marker(model)
    check_built(model, config)  # again: a loaded model may differ from its meta build
    if head_labels is not None and _generic(head_labels):
        if note := _generic_head_note(head_labels, labels):
            console.print(f"[yellow]warning:[/] {escape(note)}", highlight=False)
    elif head_labels is not None and head_labels != labels:
        _fit_head_to_labels(model, head_labels, labels)
    # a multi-label or regression fine-tune's problem_type would go into a full run's
    # config.json, and a plain load computing a loss would use its loss, not cross-entropy
    model.config.problem_type = "single_label_classification"
    is_decoder = not getattr(model.config, "is_encoder_decoder", False) and _is_decoder(model)
    if is_decoder:
        tokenizer.padding_side = "left"  # the last position is then always a real token
        tokenizer.init_kwargs["padding_side"] = "left"  # saved with it, for plain loads
    # a decoder's head reads the last token that is not the config's pad id: it must be
    # the id batches are padded with, even where the config names another token
    _set_pad_token(model, tokenizer.pad_token_id, is_decoder)
    if isinstance(method, QLoraMethod):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    _head_in_float32(model)
    check_init_text_fits(tokenizer, config)  # validate skips a GGUF file's tokenizer
    # PEFT reads a prompt's init text with the tokenizer loaded again by name: as above
    reading = {"gguf_file": source.gguf_file, "revision": config.model.revision}
    reading = {key: value for key, value in reading.items() if value is not None}
    model = apply_method(
        model,
        method,
        source.name_or_path,
        tokenizer_kwargs=reading or None,
        revision=config.model.revision,
    )
    info = ModelInfo(
        method=method.name,
        base=source.name_or_path,
        gguf_file=source.gguf_file,
        hub_id=source.hub_id,
        labels=labels,
        max_length=config.model.max_length,
        padding_side=tokenizer.padding_side,
        is_decoder=is_decoder,
        method_settings=method.model_dump(),
        revision=config.model.revision,
        trust_remote_code=config.model.trust_remote_code,
        dtype=config.model.dtype,
        packaged=config.model.name if config.model.name in PACKAGED else None,
    )
    return model, tokenizer, info


def _set_pad_token(model, pad_token_id: int | None, is_decoder: bool) -> None:
    """The classifier reads the pad id from the text config: a composite model's
    (multimodal Gemma-3: text_config inside) is not the top-level one, which plain loads
    and its other readers keep in step."""
    text = model.config.get_text_config()
    if is_decoder or text.pad_token_id is None:
        model.config.pad_token_id = text.pad_token_id = pad_token_id


def _head_in_float32(model) -> None:
    """The head trains under every method: in a bfloat16 or float16 base's dtype, updates
    below its resolution would be lost. It is kept in float32 and takes its input so; under
    autocast (evaluation of a bfloat16 model) its products still run in bfloat16, so a plain
    load with a bfloat16 head predicts the same. Adapters are float32 already (PEFT's and
    ours)."""
    if next(model.parameters()).dtype in (torch.bfloat16, torch.float16):
        head_in_float32(model, head_prefixes(model))


def hub_commit(model, name_or_path: str, revision: str | None) -> str | None:
    """The hub commit a model's weights came from, so that a run without model.revision
    can be pinned after it; None for a local folder or packaged model, read as it is.
    Called after the load, which recorded what its revision resolved to in the hub cache
    (transformers 5 no longer notes it on the config, as earlier releases did); None
    where neither says."""
    if is_local(name_or_path):
        return None
    noted = getattr(getattr(model, "config", None), "_commit_hash", None)
    try:
        from transformers.utils.hub import resolve_revision
    except ImportError:  # a transformers 5 release before it
        return noted
    resolved = resolve_revision(name_or_path, revision, local_files_only=True)
    return getattr(resolved, "resolved", None) or noted


def _checkpoint_head_labels(source: ModelSource, config: ExperimentConfig) -> list[str] | None:
    """Label names of the sequence-classification head a checkpoint already has, or None
    (a base model, or a GGUF file, which never has one)."""
    if source.gguf_file:
        return None
    try:
        checkpoint = AutoConfig.from_pretrained(
            source.name_or_path,
            revision=config.model.revision,
            trust_remote_code=config.model.trust_remote_code,
        )
    except (OSError, ValueError) as err:
        raise FintuneError(f"model.name: cannot load {source.name_or_path}: {err}") from None
    architectures = checkpoint.architectures or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        return None
    return [checkpoint.id2label[i] for i in sorted(checkpoint.id2label)]


def _generic(names: list[str]) -> bool:
    """transformers' default names (LABEL_0, ...): a head never given label names."""
    return all(re.fullmatch(r"LABEL_\d+", name) for name in names)


def _generic_head_note(head_labels: list[str], labels: list[str]) -> str | None:
    """A head of the right size but only generic names is kept as it is: it may be a fresh
    one, or someone's fine-tune saved without names, whose outputs need not be in the
    order of this run's labels."""
    if len(head_labels) != len(labels) or head_labels == labels:
        return None
    return (
        f"the checkpoint has a classification head with the generic labels "
        f"{', '.join(head_labels)}: it is kept, its outputs read as {', '.join(labels)} in "
        "that order; if it was fine-tuned, check that its outputs mean those labels, or "
        "start from the base model"
    )


def _head_linears(model) -> list[nn.Linear]:
    """The Linear layers outside the base model: the classification head (BERT's pooler
    sits inside the base model, so it is not among them)."""
    base = getattr(model, "base_model_prefix", "")
    return [
        module
        for name, module in model.named_modules()
        if name and name.split(".")[0] != base and isinstance(module, nn.Linear)
    ]


def _fit_head_to_labels(model, head_labels: list[str], labels: list[str]) -> None:
    """A checkpoint's head trained for other labels has the right shape and the wrong
    meaning. The same labels in another order: reorder its output rows. Other labels:
    a fresh head, initialised as a base model's would be."""
    linears = _head_linears(model)
    if not linears or not all(m.weight.dtype.is_floating_point for m in linears):
        raise FintuneError(
            f"model.name: the checkpoint's head predicts {head_labels}, not {labels}, "
            "and fintune cannot find or re-initialise its layers; start from the base model"
        )
    if sorted(head_labels) == sorted(labels):
        output = linears[-1]
        order = [head_labels.index(label) for label in labels]
        with torch.no_grad():
            output.weight.copy_(output.weight[order])
            if output.bias is not None:
                output.bias.copy_(output.bias[order])
        console.print(
            f"Classification head kept, its outputs reordered from {head_labels} to {labels}",
            markup=False,
        )
        return
    std = getattr(model.config, "initializer_range", 0.02)
    with torch.no_grad():
        for module in linears:
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    console.print(
        f"New classification head: the checkpoint's head predicts {head_labels}, "
        f"this run's labels are {labels}",
        markup=False,
    )


def _label_kwargs(labels: list[str]) -> dict[str, Any]:
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {name: i for i, name in enumerate(labels)},
    }


def _four_bit(method: QLoraMethod, device: str):
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise FintuneError(f"method qlora: bitsandbytes is not importable here ({err})") from None
    from transformers import BitsAndBytesConfig

    compute = method.compute_dtype
    if compute == "auto":
        cuda_bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
        compute = "bfloat16" if cuda_bf16 else "float32"
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=method.quant_type,
        bnb_4bit_use_double_quant=method.double_quant,
        bnb_4bit_compute_dtype=DTYPES[compute],
        # the head stays in full precision: each head name, at the top or inside a module
        # (patterns match from a name's start up to a dot, as regexes, or a name's end)
        llm_int8_skip_modules=[rf"(?:.*\.)?{name}" for name in HEAD_NAMES]
        + list(TOP_LEVEL_HEAD_NAMES),
    )


def _is_decoder(model) -> bool:
    names = " ".join(getattr(model.config, "architectures", None) or [type(model).__name__])
    if "Decoder" in names:  # ModernBertDecoder: "Bert" in its name, `classifier` its head
        return True
    encoders = ("Bert", "Roberta", "Electra", "Deberta", "Albert", "XLMRoberta", "MPNet")
    return not any(e in names for e in encoders) and "score" in head_modules(model)


def gguf_dequantised(gguf_file: str) -> dict[str, Any]:
    """A GGUF file's load arguments, its weights dequantised to plain tensors, as fintune
    trains and saves them: with the `kernels` package installed, transformers would keep
    them packed instead (and, asked for bfloat16, warns of packed weights that are not)."""
    return {"gguf_file": gguf_file, "quantization_config": GgufConfig(dequantize=True)}


def _drop_gguf_marker(model) -> None:
    """A GGUF checkpoint is dequantised to full precision on load, but the model keeps a
    quantizer marker that makes save_pretrained refuse; the weights are plain tensors."""
    quant = getattr(model.config, "quantization_config", None)
    method = getattr(quant, "quant_method", None) or (quant or {}).get("quant_method")
    if str(getattr(method, "value", method)) == "gguf":
        del model.config.quantization_config
        model.hf_quantizer = None
        model.is_quantized = False


# --------------------------------------------------------------------------- save / load


def save_classifier(model, tokenizer, info: ModelInfo, folder: Path) -> None:
    """Full models: plain transformers format. PEFT methods: a PEFT adapter folder.
    Bottleneck adapters: their weights and the head as safetensors, and the code that
    loads them onto the base with plain transformers. Always the tokenizer and
    fintune_model.json, which says how to rebuild."""
    folder.mkdir(parents=True, exist_ok=True)
    # an adapter's hub base at the commit it trained on, for plain loads: a branch or an
    # unpinned base moves on. The run recorded it at load time; the hub cache's refs may
    # have moved since (another process fetching main), so that record comes first.
    revision = _recorded_commit(folder) or hub_commit(model, info.base, info.revision)
    revision = revision or info.revision
    if info.method == "adapter":
        base = {
            "name_or_path": info.base,
            "revision": revision,
            "gguf_file": info.gguf_file,
            "dtype": info.dtype,
            "trust_remote_code": info.trust_remote_code,
        }
        save_bottleneck(model, folder, info.method_settings, head_prefixes(model), base)
    else:
        for settings in getattr(model, "peft_config", {}).values():
            settings.revision = revision  # adapter_config.json's, which the README reads
        model.save_pretrained(folder, safe_serialization=True)
    tokenizer.model_max_length = info.max_length  # a plain load then cuts where the run did
    tokenizer.save_pretrained(folder)
    (folder / MODEL_INFO).write_text(json.dumps(asdict(info), indent=2))


def _recorded_commit(folder: Path) -> str | None:
    """The run's environment.json model_commit, read when saving: a damaged file must not
    cost the trained model, so it counts as not recorded here (loading names it)."""
    try:
        return trained_commit(folder)
    except FintuneError:
        return None


def load_saved_classifier(folder: Path, device: str = "cpu"):
    """(model, tokenizer, ModelInfo) from a run's model folder."""
    info_path = folder / MODEL_INFO
    if not info_path.is_file():
        raise FintuneError(f"{folder}: no saved model here (missing {MODEL_INFO})")
    info = ModelInfo(**json.loads(info_path.read_text()))
    _refuse_own_code(folder, info)
    _refuse_missing_files(folder, info)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = info.padding_side
    if info.method == "full":
        model = AutoModelForSequenceClassification.from_pretrained(folder)
    else:
        base = _load_base(info, device, tokenizer.pad_token_id, folder)
        if info.method == "adapter":
            model = load_bottleneck(base, folder)
        else:
            from peft import PeftModel

            model = PeftModel.from_pretrained(base, folder)
    return model.to(device).eval(), tokenizer, info


def trained_commit(folder: Path) -> str | None:
    """The hub commit the run's base weights came from (environment.json beside the model
    folder), or None: not recorded, or a model folder copied without its run. A damaged
    file is an error: read as no commit, the base would load at another revision."""
    path = folder.parent / "environment.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        commit = record.get("model_commit") if isinstance(record, dict) else record
    except (OSError, ValueError) as error:
        commit = error
    if commit is not None and not (isinstance(commit, str) and commit):
        raise FintuneError(
            f"{path}: cannot read model_commit, the commit of the base model the adapter "
            f"trained on ({type(commit).__name__}: {commit}); restore the file, or delete "
            "it to load the base at model.revision"
        )
    return commit


def _check_base_unchanged(folder: Path, base: str, gguf_file: str | None) -> None:
    """A local base trained again or overwritten in place since the run: the adapter would
    sit on other weights than it trained on, and predict other numbers than it recorded.
    environment.json's model_sha256 (None for a hub base; not recorded by early versions,
    or a model folder copied without its run) is what the run read."""
    try:
        record = json.loads((folder.parent / "environment.json").read_text(encoding="utf-8"))
        recorded = record.get("model_sha256") if isinstance(record, dict) else None
    except (OSError, ValueError):  # missing or damaged: nothing to compare with
        return
    if isinstance(recorded, str) and (now := weights_fingerprint(base, gguf_file)) != recorded:
        raise FintuneError(
            f"base model {base}: its files changed since the run trained on it (sha256 "
            f"{now[:12]}…, not environment.json's model_sha256 {recorded[:12]}…): the "
            "adapter would predict other numbers than the run recorded. Restore the base "
            "the run trained on, or train the run again on this one"
        )


def _refuse_missing_files(folder: Path, info: ModelInfo) -> None:
    """A file the method's loader reads, deleted or never copied, named here: transformers,
    PEFT and safetensors stop with a traceback instead. A tuple: any one of its names."""
    files: list[str | tuple[str, ...]]
    if info.method == "full":
        index = folder / "model.safetensors.index.json"
        shards = json.loads(index.read_text())["weight_map"].values() if index.is_file() else []
        files = ["config.json", *sorted(set(shards))] if shards else ["config.json"]
        files += [] if shards else [("model.safetensors", "pytorch_model.bin")]
    elif info.method == "adapter":
        files = [CONFIG_FILE, WEIGHTS_FILE]
    else:
        files = ["adapter_config.json", ("adapter_model.safetensors", "adapter_model.bin")]
    for names in files:
        names = (names,) if isinstance(names, str) else names
        if not any((folder / name).is_file() for name in names):
            raise FintuneError(
                f"{folder}: the saved model is incomplete: {names[0]} is missing; restore it "
                "from a copy of the run, or train the run again"
            )


def _refuse_own_code(folder: Path, info: ModelInfo) -> None:
    """Loading a saved run never runs a model's own code (model.trust_remote_code): a full
    run keeps that code beside its weights (config.json's auto_map names it), a tokenizer
    may name its own, and an adapter run's base would run it. transformers would stop
    with a traceback, or, at a terminal, ask whether to run it."""
    named: list[str] = []
    for name in ("config.json", "tokenizer_config.json"):
        path = folder / name
        settings = json.loads(path.read_text()) if path.is_file() else {}
        # trained without the code, on transformers' own classes: it loads them again
        if not info.trust_remote_code and _has_own_class(settings):
            continue
        for value in (settings.get("auto_map") or {}).values():
            named += [value] if isinstance(value, str) else [v for v in value if v]
    named = [v for v in named if v != LOADER_CLASS]  # our plain loader; fintune loads its own way
    if info.trust_remote_code and info.method != "full":
        named.append(f"the base {info.base}")
    if named:
        raise FintuneError(
            f"{folder}: this run's model may run code of its own (model.trust_remote_code: "
            f"{', '.join(sorted(set(named)))}); fintune does not run it for a saved run, so "
            "it cannot predict or serve it: read that code, then load the model yourself "
            "with trust_remote_code=True"
        )


def _has_own_class(settings: dict) -> bool:
    """Whether transformers has its own classes for a config.json (a sequence classifier
    of its model_type) or a tokenizer_config.json (its tokenizer_class): an auto_map there
    (Phi-3's config names code transformers no longer needs) is then not run."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES as CLASSIFIERS,
    )
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

    if settings.get("model_type") in CLASSIFIERS:
        return True
    tokenizer = settings.get("tokenizer_class")
    return isinstance(tokenizer, str) and any(
        tokenizer_class_from_name(name) is not None
        for name in (tokenizer, tokenizer.removesuffix("Fast"), f"{tokenizer}Fast")
    )


def _packaged_again(info: ModelInfo) -> ModelSource | None:
    """A packaged base at its path today (a new virtualenv, another machine). Runs saved
    before `packaged` was recorded are matched by the upstream hub id."""
    if not info.packaged and not info.hub_id:  # a local base: no packaged model is it
        return None
    names = [info.packaged] if info.packaged else list(PACKAGED)
    for name in names:
        try:
            source = resolve_model(name)
        except FintuneError:  # that package is not installed
            continue
        if source.hub_id == info.hub_id and (source.gguf_file is None) == (info.gguf_file is None):
            return source
    return None


def _no_cpu_repacking(model) -> None:
    """bitsandbytes repacks a 4-bit layer that runs in eval mode on a CPU with AVX512-BF16,
    with bfloat16 scales, and re-quantizes it when training resumes or it is saved: the
    frozen base then changed at every validation, and a saved QLoRA model predicted other
    confidences than its run recorded. Kept as loaded, the layers compute as they trained."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def _load_base(info: ModelInfo, device: str, pad_token_id: int | None, folder: Path):
    kwargs: dict[str, Any] = {
        **_label_kwargs(info.labels),
        "ignore_mismatched_sizes": True,  # the trained head is loaded from the run afterwards
        "revision": info.revision,
    }
    if info.dtype != "auto":
        kwargs["dtype"] = DTYPES[info.dtype]
    base, gguf_file, commit = info.base, info.gguf_file, None
    # a local base that is not there, or its GGUF file (gemma3-270m's, joined into a cache)
    where = Path(base, gguf_file) if gguf_file else Path(base)
    if not where.exists() and base != info.hub_id:
        source = _packaged_again(info)
        if source is None:
            raise FintuneError(f"base model {where} is gone; reinstall or fetch it")
        base, gguf_file = source.name_or_path, source.gguf_file
    elif base == info.hub_id and not is_local(base):
        # the weights the adapter trained on: an unpinned base (or a branch) moves on the hub
        commit = trained_commit(folder)
        kwargs["revision"] = commit or info.revision
    if Path(base).is_dir():
        _check_base_unchanged(folder, base, gguf_file)
    if gguf_file:
        kwargs |= gguf_dequantised(gguf_file)
    if info.method == "qlora":
        method = QLoraMethod(**info.method_settings)
        kwargs["quantization_config"] = _four_bit(method, device)
        kwargs["device_map"] = {"": device}
    try:
        with quiet_load_report():  # the head comes from the run, next
            model = AutoModelForSequenceClassification.from_pretrained(base, **kwargs)
    except OSError as error:
        if kwargs["revision"] != commit or not commit:
            raise
        # offline, or a cache holding the base at another commit: say which one is needed
        raise FintuneError(
            f"base model {base} at commit {commit} (environment.json's model_commit, the "
            f"weights the adapter trained on) cannot be loaded: {error} Fetch it where the hub "
            f"can be reached: hf download {base} --revision {commit}"
        ) from None
    _no_cpu_repacking(model)
    _drop_gguf_marker(model)
    if info.method == "qlora":
        from peft import prepare_model_for_kbit_training

        # as training did: weights outside the 4-bit layers in float32 (a bfloat16 run's too)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    _head_in_float32(model)  # as training did, so the trained head loads unrounded
    _set_pad_token(model, pad_token_id, info.is_decoder)  # as training set it
    return model
