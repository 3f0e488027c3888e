"""The checks made before a model's weights load, which `fintune validate` runs (and `run`
before training): the revision, dtype and best-checkpoint settings, and what the model's
architecture allows, built on the meta device without its weights.
"""

from __future__ import annotations

import difflib
import inspect
import json
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification

from fintune.config.schema import (
    MIN_MAX_LENGTH,
    AdapterMethod,
    ExperimentConfig,
    FullMethod,
    IA3Method,
    LoraMethod,
    PrefixMethod,
    PromptMethod,
    QLoraMethod,
)
from fintune.errors import FintuneError
from fintune.models.bottleneck import check_reduction_factor
from fintune.models.methods import head_prefixes, not_run_on_text
from fintune.models.registry import ModelSource, check_no_tokenizer_beside, resolve_model


def is_local(name_or_path: str) -> bool:
    return Path(name_or_path).exists()


def check_revision(config: ExperimentConfig, source: ModelSource) -> None:
    """A revision pins a hub model; a local folder or packaged model is read as it is."""
    if config.model.revision is not None and is_local(source.name_or_path):
        raise FintuneError(
            f"model.revision: {config.model.name} is a local model, which has no revisions "
            f"to pin ({config.model.revision!r} would be ignored); a revision is for a hub id"
        )


def check_dtype(config: ExperimentConfig) -> None:
    """Method full trains every weight in the dtype it is loaded in: in bfloat16 or float16
    an update smaller than the weight's resolution is lost (at 5e-5, half of a layer's
    weights never moved). Under `auto` it loads float32; a half dtype asked for is refused."""
    if isinstance(config.method, FullMethod) and config.model.dtype in ("bfloat16", "float16"):
        precision = "bf16" if config.model.dtype == "bfloat16" else "fp16"
        raise FintuneError(
            f"model.dtype: {config.model.dtype} with method full would train every weight in "
            f"{config.model.dtype}, losing the updates smaller than its resolution; leave "
            f"model.dtype auto (float32 for full) and set training.precision: {precision} "
            "to compute in it, or freeze the base with a method such as lora"
        )


def check_best_model_loads(config: ExperimentConfig) -> None:
    """PEFT saves a projected prefix's checkpoint as the prefixes the projection computes,
    not the projection: the Trainer cannot load it back into the model it trains, so a run
    keeping its best checkpoint failed after all its training."""
    method, keep_best = config.method, config.training.load_best_model
    if isinstance(method, PrefixMethod) and method.prefix_projection and keep_best:
        raise FintuneError(
            "method.prefix_projection: true cannot keep the best checkpoint "
            "(training.load_best_model: true): PEFT saves a checkpoint's computed "
            "prefixes, not the projection the Trainer would load back, and the run would "
            "fail after training; set training.load_best_model: false (the last model "
            "is kept and saved, and loads as usual), or prefix_projection: false"
        )


def check_architecture(config: ExperimentConfig, built: dict | None = None) -> None:
    """The checks that need the model's architecture but none of its weights: max_length
    against a learned position table, and the modules a method names. The architecture is
    built from the model's configuration on the meta device (no memory, no weights); a
    GGUF file's configuration is read from its metadata (for a large vocabulary, tens of
    seconds). `built` keeps the architectures between calls, for a sweep that checks many
    points of one model."""
    source = resolve_model(config.model.name, config.model.gguf_file)
    if source.gguf_file:
        _check_gguf_method(config, source)
        check_no_tokenizer_beside(source)
    elif is_local(source.name_or_path):
        _check_weight_files(Path(source.name_or_path))
    revision, remote = config.model.revision, config.model.trust_remote_code
    key = (source.name_or_path, revision, remote, source.gguf_file)
    built = {} if built is None else built
    if key not in built:
        built[key] = _meta_architecture(*key)
    check_built(built[key], config)
    # a GGUF file's own tokenizer fits its table (and takes 15 s to read for Gemma-3)
    if not source.gguf_file:
        if ("tokenizer", *key) not in built:
            from fintune.models.load import load_tokenizer  # load imports this module

            tokenizer = load_tokenizer(source, config)
            check_token_ids(built[key], tokenizer, config.model.name)
            built["tokenizer", *key] = tokenizer
        check_init_text_fits(built["tokenizer", *key], config)
    if isinstance(config.method, AdapterMethod):
        check_reduction_factor(built[key], config.method.reduction_factor)


def check_built(model, config: ExperimentConfig) -> None:
    """What a built model (on the meta device, or loaded) must allow of the config."""
    _check_max_length(model, config)
    _check_named_modules(model, config)
    _check_feedforward_in_targets(model, config)
    _check_auto_modules(model, config)
    _check_lora_bias(model, config)
    _check_prefix_supported(model, config)
    _check_virtual_tokens_on_encoder_decoder(model, config)


def check_token_ids(model, tokenizer, name: str) -> None:
    """Every token id needs a row of the input embedding table: a pad token added to a
    decoder's tokenizer, the model never resized, passed every check and failed at the
    first training step with torch's 'IndexError: index out of range in self'."""
    rows = model.get_input_embeddings().num_embeddings
    ids = {*range(rows, len(tokenizer)), tokenizer.pad_token_id or 0}
    beyond = sorted(i for i in ids if i >= rows)
    if not beyond:
        return
    shown = ", ".join(f"{tokenizer.convert_ids_to_tokens(i)!r} ({i})" for i in beyond[:5])
    more = f" and {len(beyond) - 5} more" if len(beyond) > 5 else ""
    raise FintuneError(
        f"model.name: the tokenizer of {name} has {len(beyond)} token id(s) past the "
        f"model's embedding table of {rows} rows: {shown}{more}. Tokens added to the "
        "tokenizer (a pad token, say) need rows of their own: resize the model with "
        "model.resize_token_embeddings(len(tokenizer)) and save both, or remove the tokens "
        "(a decoder without a pad token is padded with its end-of-text token)"
    )


def check_init_text_fits(tokenizer, config: ExperimentConfig) -> None:
    """PEFT cuts a prompt's init text to num_virtual_tokens without a word (and repeats a
    shorter one): the soft prompt would start from a part of the text asked for."""
    method = config.method
    if not isinstance(method, PromptMethod) or method.init_text is None:
        return
    ids = tokenizer(method.init_text)["input_ids"]  # as PEFT reads it: special tokens too
    if len(ids) <= method.num_virtual_tokens:
        return
    kept = tokenizer.decode(ids[: method.num_virtual_tokens])
    raise FintuneError(
        f"method.init_text: {method.init_text!r} is {len(ids)} tokens to the tokenizer of "
        f"{config.model.name} (its special tokens included), more than num_virtual_tokens "
        f"{method.num_virtual_tokens}: the soft prompt would start from {kept!r} alone; set "
        f"method.num_virtual_tokens to at least {len(ids)}, or shorten the text"
    )


def _check_virtual_tokens_on_encoder_decoder(model, config: ExperimentConfig) -> None:
    """PEFT's prefix and prompt tuning feed an encoder-decoder classifier (BART, T5) what
    it cannot take (prefix: a size mismatch; prompt: input embeddings, which BART's
    classifier refuses) at the first training step."""
    method = config.method
    if isinstance(method, PrefixMethod | PromptMethod) and model.config.is_encoder_decoder:
        raise FintuneError(
            f"method {method.name}: {config.model.name} is an encoder-decoder model (model "
            f"type {model.config.model_type!r}), whose classifier PEFT's {method.name} tuning "
            "cannot feed; use method lora, ia3 or full on it"
        )


def _check_gguf_method(config: ExperimentConfig, source: ModelSource) -> None:
    """transformers dequantises a GGUF file's weights and will not quantise them again:
    a qlora run failed at the load, after the data had been prepared."""
    if isinstance(config.method, QLoraMethod):
        where = f"{source.name_or_path.rstrip('/')}/{source.gguf_file}"
        raise FintuneError(
            f"method qlora: {where} is a GGUF file, which transformers loads dequantised "
            "and cannot quantise to 4 bits again; use method lora on it (or dora), or a "
            "checkpoint of the model in safetensors for qlora"
        )


# what transformers loads a model's weights from (sharded: an index names the files)
WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.h5", "*.msgpack")


def _check_weight_files(folder: Path) -> None:
    """A local model's weights are all there and its safetensors files whole: a copy cut
    short, one without a shard, or without weights, passed every check and failed at the
    load (a truncated file with safetensors' own traceback). Reads headers, not weights."""
    for index in sorted(folder.glob("*.index.json")):
        try:
            shards = sorted(
                set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise FintuneError(
                f"model.name: {index} is damaged (its weight_map cannot be read: {err!r})"
            ) from None
        if missing := [name for name in shards if not (folder / str(name)).is_file()]:
            shown = ", ".join(map(str, missing[:3])) + (" ..." if len(missing) > 3 else "")
            raise FintuneError(
                f"model.name: {index.name} names {len(shards)} weight files, but {len(missing)} "
                f"are not in {folder} ({shown}): an incomplete copy or download?"
            )
    if not any(next(folder.glob(pattern), None) for pattern in WEIGHT_FILES):
        raise FintuneError(
            f"model.name: {folder} holds no weights (no model.safetensors or "
            "pytorch_model.bin): an incomplete copy or download?"
        )
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(path, framework="pt"):
                pass
        except (OSError, SafetensorError) as err:
            raise FintuneError(
                f"model.name: {path} is damaged or cut short (an incomplete copy or "
                f"download?): {err}"
            ) from None


def _local_owner_hint(name: str) -> str:
    """models/minilm, meant as a local folder that is not there, was read as a hub id:
    its hub error never said no such folder exists. Said when `models/` does."""
    owner = name.split("/")[0]
    if name.count("/") != 1 or not Path(owner).is_dir():
        return ""
    return f" (read as a hub id; if it is a local folder: {Path(name).absolute()} does not exist)"


def _meta_architecture(
    name_or_path: str, revision: str | None, trust_remote_code: bool, gguf_file: str | None
):
    remote = {"trust_remote_code": trust_remote_code}
    reading = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        model_config = AutoConfig.from_pretrained(
            name_or_path, revision=revision, **reading, **remote
        )
    except (OSError, ValueError, ImportError, struct.error) as err:
        # a GGUF file cut short fails in its reader: struct.error, or numpy's "cannot reshape"
        cut = gguf_file and (isinstance(err, struct.error) or "reshape" in str(err))
        hint = "; the GGUF file looks incomplete (an interrupted download?)" if cut else ""
        where = f"{name_or_path.rstrip('/')}/{gguf_file}" if gguf_file else name_or_path
        hint += _local_owner_hint(name_or_path)
        raise FintuneError(f"model.name: cannot read {where}: {err}{hint}") from None
    own_code = "AutoModelForSequenceClassification" in (
        getattr(model_config, "auto_map", None) or {}
    )
    if trust_remote_code and own_code:  # a model without its own code takes no code_revision
        remote["code_revision"] = revision  # the code the load will run
    try:
        with torch.device("meta"):
            return AutoModelForSequenceClassification.from_config(model_config, **remote)
    except Exception as err:  # noqa: BLE001 - a missing package, an unknown architecture ...
        raise FintuneError(
            f"model.name: cannot build {name_or_path}'s architecture: "
            f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
        ) from None


def _check_named_modules(model, config: ExperimentConfig) -> None:
    """Every module a LoRA or IA3 list names must exist: PEFT silently skips a misspelt
    one as long as another name matches (query + 'valeu' adapted the query alone)."""
    every = [name for name, _ in model.named_modules()]
    names = [name for name in every if not not_run_on_text(name)]  # as PEFT is told
    for field in ("target_modules", "feedforward_modules"):
        wanted = getattr(config.method, field, None)
        if not isinstance(wanted, list):
            continue  # auto, all-linear: PEFT's own choice
        missing = [t for t in wanted if not any(_names(n, t) for n in names)]
        if missing:
            layers = _weighted_layers(model)
            close = difflib.get_close_matches(missing[0], layers, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            if any(_names(n, missing[0]) for n in every):
                hint = (
                    " (only its image or audio encoder has one, which text classification "
                    "never runs)"
                )
            raise FintuneError(
                f"method.{field}: {', '.join(map(repr, missing))} is not a module of "
                f"{config.model.name}{hint}; its layers with weights are named: "
                f"{', '.join(layers)}"
            )
        heads = head_prefixes(model)
        for target in wanted:
            matched = [n for n in names if _names(n, target)]
            if all(f"{n}.".startswith(heads) for n in matched):
                raise FintuneError(
                    f"method.{field}: {target!r} is in the classification head, which every "
                    "method trains whole (PEFT would skip it unsaid); leave it out"
                )
        _check_adaptable(model, config, field, wanted, heads)


def _check_adaptable(model, config: ExperimentConfig, field: str, wanted: list[str], heads):
    """PEFT stops at a named module of a kind it cannot adapt (a block, a norm), but only
    once the weights have loaded, quoting the whole module."""
    from transformers.pytorch_utils import Conv1D

    if isinstance(config.method, IA3Method):
        kinds: tuple[type, ...] = (nn.Linear, Conv1D, nn.Conv2d, nn.Conv3d)
        allowed = "Linear, Conv1D and convolution layers"
    elif config.method.name == "dora":  # PEFT has no DoRA for nn.MultiheadAttention
        kinds = (nn.Linear, Conv1D, nn.Embedding, nn.Conv1d, nn.Conv2d, nn.Conv3d)
        allowed = "Linear, Conv1D, Embedding and convolution layers"
    else:
        kinds = (nn.Linear, Conv1D, nn.Embedding, nn.Conv1d, nn.Conv2d, nn.Conv3d)
        kinds += (nn.MultiheadAttention,)
        allowed = "Linear, Conv1D, Embedding, convolution and MultiheadAttention layers"
    for target in wanted:
        odd = [
            (n, type(m).__name__)
            for n, m in model.named_modules()
            if _names(n, target)
            and not f"{n}.".startswith(heads)
            and not not_run_on_text(n)
            and not isinstance(m, kinds)
        ]
        if odd:
            raise FintuneError(
                f"method.{field}: {target!r} names {odd[0][1]} modules ({odd[0][0]}, ...), "
                f"which {config.method.name} cannot adapt (it adapts {allowed}); "
                f"{config.model.name}'s layers with weights are named: "
                f"{', '.join(_weighted_layers(model))}"
            )


def _weighted_layers(model) -> list[str]:
    return sorted(
        {
            n.rsplit(".", 1)[-1]
            for n, m in model.named_modules()
            if _is_weighted_leaf(m) and not not_run_on_text(n)
        }
    )


def _check_auto_modules(model, config: ExperimentConfig) -> None:
    """`auto` is PEFT's module list for the architecture: for one it has none (DistilBERT,
    ALBERT, MPNet, ModernBERT), PEFT stopped once the weights had loaded, asking for
    `target_modules` in its own config."""
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING,
        TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING,
        TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
    )

    method = config.method
    if isinstance(method, IA3Method):
        lists = {
            "target_modules": TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING,
            "feedforward_modules": TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING,
        }
    elif isinstance(method, LoraMethod):  # DoRA and QLoRA too
        lists = {"target_modules": TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING}
    else:
        return
    model_type = model.config.model_type
    for field, defaults in lists.items():
        if getattr(method, field) == "auto" and model_type not in defaults:
            other = " or all-linear" if isinstance(method, LoraMethod) else ""
            raise FintuneError(
                f"method.{field}: auto is PEFT's list for the architecture, and it has none "
                f"for {config.model.name} (model type {model_type!r}); name the modules{other}. "
                f"Its layers with weights are named: {', '.join(_weighted_layers(model))}"
            )


def _check_lora_bias(model, config: ExperimentConfig) -> None:
    """PEFT's bias `all` trains every bias, `lora_only` those of the adapted layers: on a
    base without any there (Llama, Gemma, SmolLM2) it trained just what `none` does, unsaid."""
    from transformers.pytorch_utils import Conv1D

    method = config.method
    if not isinstance(method, LoraMethod) or method.bias == "none":
        return
    heads = head_prefixes(model)  # trains whole under every setting
    body = [
        (name, module)
        for name, module in model.named_modules()
        if not f"{name}.".startswith(heads) and not not_run_on_text(name)
    ]
    targets = method.target_modules
    if method.bias == "all":
        where, chosen = "its layers", body
    elif targets == "all-linear":
        where = "its linear layers (target_modules: all-linear)"
        chosen = [(n, m) for n, m in body if isinstance(m, (nn.Linear, Conv1D))]
    else:
        if targets == "auto":
            from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

            targets = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model.config.model_type]
        where = f"the layers LoRA adapts (target_modules: {', '.join(targets)})"
        chosen = [(n, m) for n, m in body if any(_names(n, t) for t in targets)]
    if not any(isinstance(getattr(m, "bias", None), torch.Tensor) for _, m in chosen):
        raise FintuneError(
            f"method.bias: {method.bias} trains the biases of {where}, and {config.model.name} "
            "has none there (the classification head trains whole anyway): the run would "
            "train just what bias none does; leave method.bias none"
        )


def _check_prefix_supported(model, config: ExperimentConfig) -> None:
    """PEFT feeds a prefix to the model, or to its first inner model, as past key values:
    one that takes none (DeBERTa, ModernBERT, ALBERT, MPNet) failed at the first step."""
    if not isinstance(config.method, PrefixMethod):
        return
    from transformers import PreTrainedModel

    def takes(module: nn.Module, argument: str) -> bool:
        return argument in inspect.signature(module.forward).parameters

    inner = next((m for m in model.children() if isinstance(m, PreTrainedModel)), None)
    if takes(model, "past_key_values") or (inner is not None and takes(inner, "past_key_values")):
        return
    if takes(inner or model, "cache"):
        import peft
        import transformers

        raise FintuneError(
            f"method prefix: transformers {transformers.__version__} names the past key values "
            f"`cache`, and PEFT {peft.__version__} feeds prefixes only through "
            "`past_key_values`; install the versions in constraints.txt (transformers<5.24)"
        )
    raise FintuneError(
        f"method prefix: {config.model.name} (a {model.config.model_type!r} model) takes "
        "no past key values, which prefix tuning feeds its prefixes through; use method "
        "prompt, lora or another method on it"
    )


def _check_feedforward_in_targets(model, config: ExperimentConfig) -> None:
    """IA3's feed-forward modules are those of its targets that it scales at their input;
    PEFT ignores one that is not a target when the targets are `auto`, unsaid."""
    method = config.method
    if not isinstance(method, IA3Method) or not isinstance(method.feedforward_modules, list):
        return
    targets = method.target_modules
    if not isinstance(targets, list):  # auto: PEFT's list for the architecture
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING

        targets = TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING.get(model.config.model_type)
        if not targets:
            return  # PEFT has no default for it and says so

    names = [name for name, _ in model.named_modules()]
    for wanted in method.feedforward_modules:
        if not any(_names(n, wanted) and any(_names(n, t) for t in targets) for n in names):
            raise FintuneError(
                f"method.feedforward_modules: {wanted!r} is not among the modules IA3 "
                f"rescales (method.target_modules: {', '.join(targets)}); "
                "a feed-forward module must be a target too"
            )


def _names(module_name: str, key: str) -> bool:
    """Whether a module list's `key` names the module, as PEFT matches it: whole, or as
    the last parts of its dotted name."""
    return module_name == key or module_name.endswith(f".{key}")


def _is_weighted_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None and getattr(module, "weight", None) is not None


def _position_limit(model) -> int | None:
    """Tokens a model with a learned table of absolute positions can take; None for models
    without one (RoPE decoders, DeBERTa's relative positions), which take longer inputs."""
    for name, module in model.named_modules():
        last = name.rsplit(".", 1)[-1]
        if isinstance(module, torch.nn.Embedding) and last in (
            "position_embeddings",  # BERT family; RoBERTa's ids start after the padding id
            "embed_positions",  # BART, OPT: the table holds `offset` extra rows
            "wpe",  # GPT-2
        ):
            offset = getattr(module, "offset", 0)  # BART-style tables say so themselves
            if last == "position_embeddings" and module.padding_idx is not None:
                offset = module.padding_idx + 1
            return module.num_embeddings - offset
    return None


def _check_max_length(model, config: ExperimentConfig) -> None:
    """Inputs longer than the model has positions for would fail mid-training; say so now."""
    limit = _position_limit(model)
    if limit is None:
        return
    # prompt tokens come first; a prefix counts as past tokens, so positions start after it
    virtual = getattr(config.method, "num_virtual_tokens", 0)
    if virtual and limit - virtual < MIN_MAX_LENGTH:  # no max_length would do
        raise FintuneError(
            f"method.num_virtual_tokens: {virtual} leaves {config.model.name}'s {limit} "
            f"positions fewer than {MIN_MAX_LENGTH} for the text; set it to at most "
            f"{limit - MIN_MAX_LENGTH}"
        )
    if config.model.max_length + virtual > limit:
        prompt = f", less the {config.method.name}'s {virtual} virtual tokens" if virtual else ""
        raise FintuneError(
            f"model.max_length: {config.model.max_length} is more than {config.model.name} "
            f"takes ({limit} positions{prompt}); set model.max_length to at most {limit - virtual}"
        )
