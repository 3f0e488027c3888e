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


def test_heads_of_other_architectures_train_under_peft():
    from transformers import BartConfig, BartForSequenceClassification

    from fintune.config.schema import LoraMethod
    from fintune.models.methods import apply_method

    size = dict(d_model=16, encoder_layers=1, decoder_layers=1, vocab_size=50)
    size |= dict(encoder_attention_heads=2, decoder_attention_heads=2)
    size |= dict(encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=32)
    bart = BartForSequenceClassification(BartConfig(num_labels=3, **size))
    model = apply_method(bart, LoraMethod(r=2, target_modules=["q_proj", "v_proj"]))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("classification_head" in n for n in trainable)


def test_total_parameters_count_a_trained_head_once(tiny_bert):
    from fintune.config.schema import LoraMethod
    from fintune.models.methods import apply_method, count_parameters

    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    base_total = sum(p.numel() for p in base.parameters())
    model = apply_method(base, LoraMethod(r=4, target_modules=["query", "value"]))
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    trainable, total = count_parameters(model)
    assert total == base_total + lora  # not + a second pooler and classifier
    head = sum(p.numel() for n, p in model.named_parameters() if "modules_to_save" in n)
    assert trainable == lora + head
