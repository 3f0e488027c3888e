"""Bottleneck adapters, written for our transformers version.

PEFT has no bottleneck adapter, and AdapterHub's `adapters` pins an older transformers.
Pfeiffer et al. (2020) place one adapter per layer, after the feed-forward block: here it
sits on the output of the block's last projection, before dropout, residual and norm
(AdapterHub's Pfeiffer configuration wires the norms around it differently):

    h = ffn_out(x);  h = h + up(act(down(h)))

`up` starts at zero, so a fresh adapter is the identity and training starts from the
pretrained model. The adapter lives on the projection as a child module and runs in a
forward hook, so the base weights keep their names and load from any checkpoint.

The layer and its placement are in standalone_bottleneck.py, which imports nothing of
fintune: it is copied into each saved folder so that plain transformers loads the run.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from fintune.errors import FintuneError
from fintune.models import standalone_bottleneck
from fintune.models.standalone_bottleneck import (
    ADAPTER_ATTR,
    CONFIG_FILE,
    FFN_OUTPUT_IN_LAYER,
    FFN_OUTPUT_SUFFIXES,
    WEIGHTS_FILE,
    attach,
    ffn_outputs,
    load_adapter_weights,
    out_features,
)

__all__ = ["ADAPTER_ATTR", "CONFIG_FILE", "WEIGHTS_FILE"]  # used by load.py and methods.py
# the loader plain transformers runs (trust_remote_code), copied into each saved folder
PLAIN_LOADER = "fintune_bottleneck.py"
LOADER_CLASS = f"fintune_bottleneck.{standalone_bottleneck.BottleneckAdapterClassifier.__name__}"


def _out_features(module: nn.Module) -> int:
    try:
        return out_features(module)
    except ValueError as error:
        raise FintuneError(str(error)) from None


def ffn_output_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    found = ffn_outputs(model)
    if not found:
        model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
        raise FintuneError(
            f"method adapter: no feed-forward blocks found in a {model_type!r} model; "
            f"supported layouts end in: {', '.join(FFN_OUTPUT_SUFFIXES)}, "
            f"layers.N.{FFN_OUTPUT_IN_LAYER}"
        )
    return found


def check_reduction_factor(model: nn.Module, reduction_factor: int) -> None:
    """The adapters are width / reduction_factor wide: a factor that does not divide the
    width would be rounded down unsaid, one above it give a 1-wide adapter."""
    model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    for width in sorted({_out_features(module) for _, module in ffn_output_modules(model)}):
        if reduction_factor <= width and width % reduction_factor == 0:
            continue
        why = "is more than" if reduction_factor > width else "does not divide"
        allowed = ", ".join(str(f) for f in range(1, width + 1) if width % f == 0)
        raise FintuneError(
            f"method.reduction_factor: {reduction_factor} {why} the {model_type!r} model's "
            f"hidden size {width}; choose one of {allowed}"
        )


def add_bottleneck_adapters(
    model: nn.Module, reduction_factor: int, non_linearity: str = "relu", dropout: float = 0.0
) -> list[str]:
    """Attach one adapter per feed-forward block; returns the adapted module names."""
    for _, module in ffn_output_modules(model):
        _out_features(module)  # a layout whose width is unknown: fintune's error
    return attach(model, reduction_factor, non_linearity, dropout)


def adapter_state_dict(model: nn.Module, extra_prefixes: tuple[str, ...] = ()) -> dict:
    """Adapter weights, plus any parameters under `extra_prefixes` (the trained head)."""
    return {
        name: tensor.detach().cpu().contiguous()
        for name, tensor in model.state_dict().items()
        if f".{ADAPTER_ATTR}." in name or name.startswith(extra_prefixes)
    }


def save_bottleneck(
    model: nn.Module, folder: Path, settings: dict, head: tuple[str, ...], base: dict
) -> None:
    """The adapters and the head, with what loads them: fintune reads bottleneck_config.json;
    plain transformers reads config.json, whose auto_map names the copied PLAIN_LOADER, and
    loads `base` (name_or_path, revision, gguf_file, dtype, trust_remote_code) under them."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state_dict(model, head), str(folder / WEIGHTS_FILE))
    record = {**settings, "head": list(head), "base": base}
    (folder / CONFIG_FILE).write_text(json.dumps(record, indent=2))
    shutil.copyfile(standalone_bottleneck.__file__, folder / PLAIN_LOADER)
    config = copy.deepcopy(model.config)
    # ours alone: a base's own entries would send a plain load to code this folder lacks
    config.auto_map = {"AutoModelForSequenceClassification": LOADER_CLASS}
    config.save_pretrained(folder)


def load_bottleneck(model: nn.Module, folder: Path) -> nn.Module:
    settings = json.loads((folder / CONFIG_FILE).read_text())
    add_bottleneck_adapters(
        model, settings["reduction_factor"], settings["non_linearity"], settings["dropout"]
    )
    weights = load_file(str(folder / WEIGHTS_FILE))
    try:
        load_adapter_weights(model, weights, tuple(settings.get("head", ())))
    except ValueError as error:
        raise FintuneError(f"{folder}: {error}") from None
    return model
