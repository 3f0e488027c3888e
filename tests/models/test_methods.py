"""PEFT configs built from method settings."""

from __future__ import annotations

from transformers import AutoModelForSequenceClassification

from fintune.config.schema import PromptMethod
from fintune.models.methods import peft_config


def test_a_prompt_init_text_loads_its_tokenizer_with_the_given_kwargs(tiny_bert):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    method = PromptMethod(num_virtual_tokens=4, init_text="financial sentiment")
    config = peft_config(model, method, "models/smollm2", {"gguf_file": "smollm2.gguf"})
    assert config.tokenizer_name_or_path == "models/smollm2"
    assert config.tokenizer_kwargs == {"gguf_file": "smollm2.gguf"}
    random_init = peft_config(model, PromptMethod(), "models/smollm2", {"gguf_file": "x.gguf"})
    assert random_init.tokenizer_kwargs is None  # PEFT refuses kwargs without an init text
