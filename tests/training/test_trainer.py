"""The training collator: a decoder's left padding must not move a text's positions."""

from __future__ import annotations

import pytest
import torch

from fintune.models import load_classifier
from fintune.training.trainer import collator

LABELS = ["negative", "neutral", "positive"]


def _logits_alone_and_padded(config):
    model, tokenizer, _ = load_classifier(config, LABELS, "cpu")
    model.eval()
    collate = collator(tokenizer, model)
    short = dict(tokenizer("profit fell"))
    long = dict(tokenizer("the group reported that earnings climbed and margin improved"))
    with torch.no_grad():
        alone = model(**collate([short])).logits[0]
        padded_batch = collate([short, long])
        padded = model(**padded_batch).logits[0]
    return alone, padded, padded_batch


@pytest.mark.parametrize("backbone", ["tiny_gpt2", "tiny_llama"])
@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_left_padded_text_keeps_its_positions(make_config, request, backbone, method):
    model = request.getfixturevalue(backbone)
    config = make_config(model={"name": str(model)}, method={"name": method})
    alone, padded, batch = _logits_alone_and_padded(config)
    assert batch["position_ids"][0].tolist()[-2:] == [0, 1]  # counted from the first token
    assert torch.allclose(alone, padded, atol=1e-5)


@pytest.mark.parametrize("backbone", ["tiny_gpt2", "tiny_llama"])
def test_prefix_tuning_pads_decoders_on_the_right(make_config, request, backbone):
    model = request.getfixturevalue(backbone)
    config = make_config(model={"name": str(model)}, method={"name": "prefix"})
    alone, padded, batch = _logits_alone_and_padded(config)
    assert batch["attention_mask"][0].tolist()[-1] == 0  # the short text, padded at its end
    assert torch.allclose(alone, padded, atol=1e-5)


def test_prompt_tuning_gets_no_position_ids(make_config, tiny_gpt2):
    """PEFT drops them for prompt learning (with a warning); the collator does not send them."""
    config = make_config(model={"name": str(tiny_gpt2)}, method={"name": "prompt"})
    _, _, batch = _logits_alone_and_padded(config)
    assert "position_ids" not in batch


def test_an_encoder_is_padded_on_the_right_without_position_ids(make_config):
    _, _, batch = _logits_alone_and_padded(make_config())
    assert "position_ids" not in batch
    assert batch["attention_mask"][0].tolist()[-1] == 0  # the short text, padded at its end
