"""How many tokens a model takes: learned absolute position tables and their offsets."""

from __future__ import annotations

import pytest
from transformers import (
    BartConfig,
    BartForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from fintune.models.load import _position_limit

SMALL = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
BART = dict(d_model=16, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=32, decoder_ffn_dim=32)
BART |= dict(encoder_attention_heads=2, decoder_attention_heads=2)


@pytest.mark.parametrize(
    ("model", "limit"),
    [
        (
            lambda: BertForSequenceClassification(BertConfig(max_position_embeddings=64, **SMALL)),
            64,
        ),
        # position ids start after the padding id 1: two rows are never a token's
        (
            lambda: RobertaForSequenceClassification(
                RobertaConfig(max_position_embeddings=66, **SMALL)
            ),
            64,
        ),
        (lambda: BartForSequenceClassification(BartConfig(max_position_embeddings=64, **BART)), 64),
        (
            lambda: GPT2ForSequenceClassification(
                GPT2Config(n_positions=64, n_embd=16, n_layer=1, n_head=2)
            ),
            64,
        ),
        (
            lambda: LlamaForSequenceClassification(
                LlamaConfig(max_position_embeddings=64, **SMALL)
            ),
            None,
        ),
    ],
    ids=["bert", "roberta", "bart", "gpt2", "llama-rope"],
)
def test_position_limit(model, limit):
    assert _position_limit(model()) == limit
