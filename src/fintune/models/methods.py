"""One switch for the fine-tuning method. PEFT does LoRA, DoRA, QLoRA's adapters, IA3,
prefix and prompt tuning; `adapter` is our bottleneck adapter. The classification head
is trained by every method.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from fintune.config.schema import (
    AdapterMethod,
    FullMethod,
    IA3Method,
    LoraMethod,
    MethodConfig,
    PrefixMethod,
    PromptMethod,
)
from fintune.errors import FintuneError
from fintune.models.bottleneck import (
    ADAPTER_ATTR,
    add_bottleneck_adapters,
    check_reduction_factor,
)
from fintune.models.standalone_bottleneck import OTHER_TOWERS

# what only an image or audio input runs (a multimodal base): text never trains it
NOT_RUN_ON_TEXT = (*OTHER_TOWERS, "multi_modal_projector")

# Head modules of *ForSequenceClassification models. BERT-style encoders put a pooler
# (dense + tanh) in front of the classifier, DistilBERT a pre_classifier; both are part of
# the head, so they train too. BART and T5 name theirs classification_head, XLNet
# sequence_summary + logits_proj.
HEAD_NAMES = (
    "classifier",
    "score",
    "pooler",
    "pre_classifier",
    "classification_head",
    "sequence_summary",
    "logits_proj",
)
# Names that are the head only as a child of the model itself: ModernBERT's `head`
# (dense + norm in front of its classifier). Deeper down such a name is something else.
TOP_LEVEL_HEAD_NAMES = ("head",)


def head_modules(model: nn.Module) -> list[str]:
    """Short names of the head modules present (PEFT's modules_to_save form)."""
    names = [name for name, _ in model.named_modules()]
    present = {name.rsplit(".", 1)[-1] for name in names}
    heads = [h for h in HEAD_NAMES if h in present]
    for top in TOP_LEVEL_HEAD_NAMES:
        # PEFT takes every module whose name ends in a listed one: a top-level name that
        # a deeper module's ends in too (`lm_head`) would train that module as well
        deeper = [n for n in names if n.endswith(top) and n != top]
        if top in names and not deeper:
            heads.append(top)
    return heads


def not_run_on_text(name: str) -> bool:
    """Whether the module `name` is part of a multimodal base's image or audio side."""
    return not set(name.split(".")).isdisjoint(NOT_RUN_ON_TEXT)


def _exclude_other_towers(model: nn.Module) -> str | None:
    """PEFT's exclude_modules (a regex over module names) for an image or audio encoder,
    which a LoRA or IA3 name (fc1, q_proj, all-linear) matched too: adapters that never
    train, counted as trainable. None for a text-only base."""
    if not any(not_run_on_text(name) for name, _ in model.named_modules()):
        return None
    return rf"(.*\.)?({'|'.join(NOT_RUN_ON_TEXT)})(\..*)?"


def head_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Full parameter-name prefixes of the head, e.g. ('bert.pooler.', 'classifier.')."""
    heads = set(head_modules(model))
    return tuple(
        f"{name}."
        for name, _ in model.named_modules()
        if name.rsplit(".", 1)[-1] in heads and name.count(".") <= 1
    )


def apply_method(
    model: nn.Module,
    method: MethodConfig,
    tokenizer_path: str | None = None,
    tokenizer_kwargs: dict[str, Any] | None = None,
    revision: str | None = None,
):
    """`tokenizer_path` and `tokenizer_kwargs` (a GGUF file) load the tokenizer that turns a
    prompt-tuning init text into tokens. `revision` is the base's, recorded in the adapter's
    config: without it PEFT's AutoPeftModel loads the hub model's main branch."""
    if isinstance(method, FullMethod):
        return model
    if isinstance(method, AdapterMethod):
        check_reduction_factor(model, method.reduction_factor)
        add_bottleneck_adapters(
            model, method.reduction_factor, method.non_linearity, method.dropout
        )
        trainable = head_prefixes(model)
        for name, param in model.named_parameters():
            param.requires_grad = f".{ADAPTER_ATTR}." in name or name.startswith(trainable)
        return model
    from peft import get_peft_model

    try:
        config = peft_config(model, method, tokenizer_path, tokenizer_kwargs)
        return get_peft_model(model, config, revision=revision)
    except ValueError as err:  # PEFT's message names the modules it could not find
        raise FintuneError(f"method {method.name}: {err}") from None


def peft_config(
    model: nn.Module,
    method: MethodConfig,
    tokenizer_path: str | None = None,
    tokenizer_kwargs: dict[str, Any] | None = None,
):
    from peft import (
        IA3Config,
        LoraConfig,
        PrefixTuningConfig,
        PromptTuningConfig,
        PromptTuningInit,
        TaskType,
    )

    heads = head_modules(model)
    if isinstance(method, LoraMethod):  # also DoRA and QLoRA
        return LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=method.r,
            lora_alpha=method.alpha,
            lora_dropout=method.dropout,
            target_modules=_targets(method.target_modules),
            exclude_modules=_exclude_other_towers(model),
            bias=method.bias,
            use_dora=method.name == "dora",
            modules_to_save=heads,
        )
    if isinstance(method, IA3Method):
        return IA3Config(
            task_type=TaskType.SEQ_CLS,
            target_modules=_targets(method.target_modules),
            exclude_modules=_exclude_other_towers(model),
            feedforward_modules=_feedforward(model, method),
            modules_to_save=heads,
        )
    if isinstance(method, PrefixMethod):
        return PrefixTuningConfig(
            task_type=TaskType.SEQ_CLS,
            num_virtual_tokens=method.num_virtual_tokens,
            prefix_projection=method.prefix_projection,
            encoder_hidden_size=method.encoder_hidden_size
            or model.config.get_text_config().hidden_size,  # a multimodal config keeps it there
            modules_to_save=heads,
            **_falcon_key_value_sizes(model.config),
        )
    if isinstance(method, PromptMethod):
        from_text = method.init_text is not None
        return PromptTuningConfig(
            task_type=TaskType.SEQ_CLS,
            num_virtual_tokens=method.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT if from_text else PromptTuningInit.RANDOM,
            prompt_tuning_init_text=method.init_text,
            tokenizer_name_or_path=tokenizer_path if from_text else None,
            tokenizer_kwargs=tokenizer_kwargs if from_text else None,
            modules_to_save=heads,
            **_prompt_sizes(model),
        )
    raise FintuneError(f"method: unsupported method {method.name!r}")


def _falcon_key_value_sizes(config) -> dict[str, int]:
    """A prefix is a key and a value per layer and cached head. PEFT finds the grouped heads
    by `num_key_value_heads`, which Falcon calls `num_kv_heads` (`multi_query`: one), so it
    built them for every attention head and the first forward failed. Falcon's new
    decoder architecture caches them repeated to every head."""
    if getattr(config, "model_type", None) != "falcon":
        return {}
    heads = config.num_attention_heads
    if config.new_decoder_architecture:  # its attention repeats the grouped ones to all
        kv_heads = heads
    else:
        kv_heads = 1 if config.multi_query else config.num_kv_heads
    return {"num_attention_heads": kv_heads, "token_dim": kv_heads * config.hidden_size // heads}


def _prompt_sizes(model: nn.Module) -> dict[str, int]:
    """The sizes of a soft prompt that PEFT would get wrong or not find. It is prepended to
    the token embeddings, so it has their width, which PEFT takes to be hidden_size:
    ELECTRA and ALBERT embed narrower (128 against 256 or 768) and project up after.
    DistilBERT names its width `dim` and its heads `n_heads` (transformers maps the usual
    names to them, PEFT does not): heads are given only where PEFT would not find them."""
    config = getattr(model, "config", None)
    keys = config.to_dict() if config is not None else {}
    keys = keys.get("text_config") or keys  # as PEFT reads a vision-language model's
    sizes: dict[str, int] = {}
    width = getattr(model.get_input_embeddings(), "embedding_dim", None)
    if isinstance(width, int):
        sizes["token_dim"] = width
    elif not {"hidden_size", "n_embd", "d_model"} & keys.keys() and hasattr(config, "hidden_size"):
        sizes["token_dim"] = config.hidden_size
    heads = {"num_attention_heads", "n_head", "num_heads", "encoder_attention_heads"}
    if not heads & keys.keys() and hasattr(config, "num_attention_heads"):
        sizes["num_attention_heads"] = config.num_attention_heads
    return sizes


def _targets(value: list[str] | str) -> list[str] | str | None:
    return None if value == "auto" else value  # None: PEFT's default for the architecture


def _feedforward(model: nn.Module, method: IA3Method) -> list[str] | str | None:
    """PEFT checks, when it loads a saved IA3 adapter, that its feed-forward list is a subset
    of its target list, as strings: targets [query, value], with PEFT's auto feed-forward
    list output.dense, trained and saved a model nothing could load. A list that would fail
    that check is passed as the pattern PEFT matches a list by (a name that is one of them
    or ends in '.' and one), which it does not check: the same modules are scaled at their
    input."""
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FEEDFORWARD,
    )
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as TARGETS

    model_type = getattr(getattr(model, "config", None), "model_type", None)
    targets = method.target_modules
    if targets == "auto":
        targets = TARGETS.get(model_type)
    wanted = method.feedforward_modules
    if wanted == "auto":
        if method.target_modules == "auto":
            return None  # PEFT's two lists for the architecture, which agree
        wanted = FEEDFORWARD.get(model_type)
    if not wanted or targets is None or set(wanted) <= set(targets):
        return wanted  # None: PEFT says it has no list for the architecture
    return "|".join(rf"(.*\.)?{re.escape(name)}" for name in wanted)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total); 4-bit weights count as their unpacked number of values. A head
    that PEFT trains as a copy (modules_to_save) counts once: the frozen original it keeps
    beside the copy is not part of the model that predicts."""
    trainable = total = 0
    for name, param in model.named_parameters():
        if ".original_module." in f".{name}":
            continue
        n = param.numel()
        if param.__class__.__name__ == "Params4bit":
            n *= 2
        total += n
        trainable += n if param.requires_grad else 0
    return trainable, total
