"""Bottleneck adapters, written for our transformers version.

PEFT has no bottleneck adapter, and AdapterHub's `adapters` pins an older transformers.
Pfeiffer et al. (2020) place one adapter per layer, after the feed-forward block: here it
sits on the output of the block's last projection, before dropout, residual and norm
(AdapterHub's Pfeiffer configuration wires the norms around it differently):

    h = ffn_out(x);  h = h + up(act(down(h)))

`up` starts at zero, so a fresh adapter is the identity and training starts from the
pretrained model. The adapter lives on the projection as a child module and runs in a
forward hook, so the base weights keep their names and load from any checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fintune.errors import FintuneError

ADAPTER_ATTR = "bottleneck_adapter"
WEIGHTS_FILE = "bottleneck_adapter.safetensors"
CONFIG_FILE = "bottleneck_config.json"

# The last projection of each layer's feed-forward block, by architecture family.
FFN_OUTPUT_SUFFIXES = (
    ".output.dense",  # BERT, RoBERTa, MiniLM, DeBERTa, ELECTRA (layer.N.output.dense)
    ".ffn.lin2",  # DistilBERT
    ".mlp.c_proj",  # GPT-2
    ".mlp.down_proj",  # Llama, Qwen, Gemma, Mistral, SmolLM
    ".mlp.fc2",  # OPT, Phi
    ".mlp.dense_4h_to_h",  # GPT-NeoX, Falcon
)

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


def _out_features(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features
    weight = getattr(module, "weight", None)  # GPT-2's Conv1D stores (in, out)
    if weight is not None and weight.dim() == 2:
        return weight.shape[1]
    raise FintuneError(f"method adapter: cannot tell the width of {type(module).__name__}")


def ffn_output_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    found = [
        (name, module)
        for name, module in model.named_modules()
        if name.endswith(FFN_OUTPUT_SUFFIXES) and ".attention." not in name
    ]
    if not found:
        model_type = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
        raise FintuneError(
            f"method adapter: no feed-forward blocks found in a {model_type!r} model; "
            f"supported layouts end in: {', '.join(FFN_OUTPUT_SUFFIXES)}"
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
    names = []
    for name, module in ffn_output_modules(model):
        weight = next(module.parameters())
        adapter = Bottleneck(_out_features(module), reduction_factor, non_linearity, dropout)
        module.add_module(ADAPTER_ATTR, adapter.to(weight.device))
        module.register_forward_hook(_run_adapter)
        names.append(name)
    return names


def adapter_state_dict(model: nn.Module, extra_prefixes: tuple[str, ...] = ()) -> dict:
    """Adapter weights, plus any parameters under `extra_prefixes` (the trained head)."""
    return {
        name: tensor.detach().cpu().contiguous()
        for name, tensor in model.state_dict().items()
        if f".{ADAPTER_ATTR}." in name or name.startswith(extra_prefixes)
    }


def save_bottleneck(model: nn.Module, folder: Path, settings: dict, head: tuple[str, ...]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state_dict(model, head), str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps({**settings, "head": list(head)}, indent=2))


def load_bottleneck(model: nn.Module, folder: Path) -> nn.Module:
    settings = json.loads((folder / CONFIG_FILE).read_text())
    add_bottleneck_adapters(
        model, settings["reduction_factor"], settings["non_linearity"], settings["dropout"]
    )
    missing, unexpected = model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=False)
    head = tuple(settings.get("head", ()))  # the trained head: a base's own would be random
    adapter_missing = [k for k in missing if f".{ADAPTER_ATTR}." in k or k.startswith(head)]
    if adapter_missing or unexpected:
        raise FintuneError(
            f"{folder}: adapter weights do not fit this model "
            f"(missing {adapter_missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model
