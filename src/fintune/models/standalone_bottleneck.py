"""Bottleneck adapters without fintune: the layer, where it goes, and a plain loader.

fintune imports this module, and copies it into every bottleneck-adapter run's model
folder as fintune_bottleneck.py, which the folder's config.json names for
AutoModelForSequenceClassification. So plain transformers loads such a run:

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)

It loads the base model the run trained from (bottleneck_config.json's "base"), adds one
adapter after each layer's feed-forward block, and loads their weights and the trained head.
It must import nothing of fintune: only torch, safetensors and transformers.
"""

from __future__ import annotations

import contextlib
import json
import logging

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification
from transformers.utils import cached_file

ADAPTER_ATTR = "bottleneck_adapter"
WEIGHTS_FILE = "bottleneck_adapter.safetensors"
CONFIG_FILE = "bottleneck_config.json"

# The last projection of each layer's feed-forward block, by architecture family.
FFN_OUTPUT_SUFFIXES = (
    ".output.dense",  # BERT, RoBERTa, MiniLM, DeBERTa, ELECTRA (layer.N.output.dense)
    ".ffn.lin2",  # DistilBERT
    ".mlp.c_proj",  # GPT-2
    ".mlp.down_proj",  # Llama, Qwen, Gemma, Mistral, SmolLM
    ".mlp.fc2",  # Phi
    ".mlp.dense_4h_to_h",  # GPT-NeoX, Falcon, BLOOM
    ".mlp.fc_out",  # GPT-J
    ".mlp.Wo",  # ModernBERT (its attention's is .attn.Wo)
)
# OPT and BART keep it in the layer itself: layers.N.fc2
FFN_OUTPUT_IN_LAYER = "fc2"

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


class Bottleneck(nn.Module):
    def __init__(self, hidden: int, reduction_factor: int, non_linearity: str, dropout: float):
        super().__init__()
        width = max(1, hidden // reduction_factor)
        self.down = nn.Linear(hidden, width)
        self.act = ACTIVATIONS[non_linearity]()
        self.dropout = nn.Dropout(dropout)
        self.up = nn.Linear(width, hidden)
        nn.init.normal_(self.down.weight, std=1e-2)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        update = self.up(self.dropout(self.act(self.down(hidden.to(self.down.weight.dtype)))))
        return hidden + update.to(hidden.dtype)


def _run_adapter(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return getattr(module, ADAPTER_ATTR)(output)


def out_features(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features
    weight = getattr(module, "weight", None)  # GPT-2's Conv1D stores (in, out)
    if weight is not None and weight.dim() == 2:
        return weight.shape[1]
    raise ValueError(f"method adapter: cannot tell the width of {type(module).__name__}")


# A multimodal base's image or audio encoder: text classification never runs it.
OTHER_TOWERS = ("vision_tower", "vision_model", "visual", "audio_tower")


def _in_layer(name: str, leaf: str) -> bool:
    parts = name.split(".")
    return len(parts) > 2 and parts[-1] == leaf and parts[-2].isdigit()


def ffn_outputs(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (name, module)
        for name, module in model.named_modules()
        if (name.endswith(FFN_OUTPUT_SUFFIXES) or _in_layer(name, FFN_OUTPUT_IN_LAYER))
        and ".attention." not in name
        and not set(name.split(".")) & set(OTHER_TOWERS)
    ]


def attach(model: nn.Module, reduction_factor: int, non_linearity: str, dropout: float) -> list:
    """One adapter per feed-forward block, run in a forward hook so the base weights keep
    their names; returns the adapted module names."""
    names = []
    for name, module in ffn_outputs(model):
        weight = next(module.parameters())
        adapter = Bottleneck(out_features(module), reduction_factor, non_linearity, dropout)
        module.add_module(ADAPTER_ATTR, adapter.to(weight.device))
        module.register_forward_hook(_run_adapter)
        names.append(name)
    return names


def load_adapter_weights(model: nn.Module, weights: dict, head: tuple[str, ...]) -> None:
    """The adapters' weights and the trained head (a base's own head would be random) into
    a model with the adapters attached; ValueError naming what does not fit."""
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if f".{ADAPTER_ATTR}." in k or k.startswith(head)]
    if missing or unexpected:
        raise ValueError(
            f"adapter weights do not fit this model "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


# what from_pretrained passes on: to read the folder's files, and to load the base
FOLDER_KWARGS = ("revision", "subfolder", "cache_dir", "token", "local_files_only", "proxies")
BASE_KWARGS = ("cache_dir", "token", "local_files_only", "proxies", "force_download", "device_map")


def _float32_inputs(_module: nn.Module, args: tuple) -> tuple:
    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def head_in_float32(model: nn.Module, head: tuple[str, ...]) -> None:
    """A half-precision base's head was trained, and is kept, in float32 (as fintune does)."""
    modules = dict(model.named_modules())
    for prefix in head:
        module = modules[prefix.rstrip(".")]
        if any(p.is_floating_point() and p.dtype != torch.float32 for p in module.parameters()):
            module.float()
            module.register_forward_pre_hook(_float32_inputs)


@contextlib.contextmanager
def quiet_load_report():
    """transformers reports the base's head as missing and "newly initialized": the trained
    head is loaded right after, so that would only alarm whoever loads a trained model."""
    # quietened so, transformers checks a tensor-parallel plan and lists every layer as
    # "not sharded" (on one GPU or a CPU): quiet that too
    names = ("modeling_utils", "distributed.tensor_parallel")
    loggers = [logging.getLogger(f"transformers.{name}") for name in names]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.setLevel(level)


class BottleneckAdapterClassifier:
    """What config.json's auto_map names: transformers calls from_pretrained on it. The
    model it returns is the base's own class with the adapters hooked in: its
    save_pretrained does not keep them (copy the run's folder instead)."""

    @classmethod
    def register_for_auto_class(cls, auto_class=None) -> None:
        """transformers registers remote classes for saving; a loader has nothing to save."""

    @classmethod
    def from_pretrained(cls, folder, *_args, config=None, dtype=None, **kwargs):
        dtype = dtype or kwargs.get("torch_dtype")
        where = {k: v for k, v in kwargs.items() if k in FOLDER_KWARGS}
        with open(cached_file(folder, CONFIG_FILE, **where), encoding="utf-8") as file:
            settings = json.load(file)
        config = config or AutoConfig.from_pretrained(folder, **where)  # called on this class
        base = settings["base"]
        saved_dtype = base.get("dtype") or "auto"
        if dtype is None and saved_dtype != "auto":
            dtype = getattr(torch, saved_dtype)
        labels = config.id2label
        with quiet_load_report():
            model = AutoModelForSequenceClassification.from_pretrained(
                base["name_or_path"],
                revision=base.get("revision"),  # the commit a hub base trained at, where known
                gguf_file=base.get("gguf_file"),
                num_labels=len(labels),
                id2label=labels,
                label2id=config.label2id,
                ignore_mismatched_sizes=True,  # the trained head is loaded below
                # a base with its own code runs it only if the run did and the caller allows it
                trust_remote_code=bool(base.get("trust_remote_code"))
                and bool(kwargs.get("trust_remote_code")),
                **({} if dtype is None else {"dtype": dtype}),
                **{k: v for k, v in kwargs.items() if k in BASE_KWARGS},
            )
        text = model.config.get_text_config()
        model.config.pad_token_id = text.pad_token_id = config.pad_token_id
        head = tuple(settings.get("head", ()))
        if next(model.parameters()).dtype in (torch.bfloat16, torch.float16):
            head_in_float32(model, head)  # before loading: the trained head, unrounded
        attach(model, settings["reduction_factor"], settings["non_linearity"], settings["dropout"])
        weights = load_file(cached_file(folder, WEIGHTS_FILE, **where))
        try:
            load_adapter_weights(model, weights, head)
        except ValueError as error:
            raise ValueError(f"{folder}: {error}, its base {base['name_or_path']}") from None
        return model.eval()
