"""PEFT configs built from method settings."""

from __future__ import annotations

import pytest
from torch import nn
from transformers import AutoModelForSequenceClassification

from fintune.config.schema import IA3Method, LoraMethod, PromptMethod
from fintune.models.methods import apply_method, peft_config


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


def test_a_top_level_head_trains_unless_peft_would_take_a_deeper_module_with_it():
    """ModernBERT puts `head` (dense + norm) in front of its classifier. PEFT takes every
    module whose name ends in a listed one, so `head` is not listed where `lm_head` is."""
    from fintune.models.methods import head_modules, head_prefixes

    model = nn.Module()
    model.model, model.head, model.classifier = nn.Module(), nn.Linear(4, 4), nn.Linear(4, 3)
    model.model.layer = nn.Linear(4, 4)
    assert head_modules(model) == ["classifier", "head"]
    assert set(head_prefixes(model)) == {"classifier.", "head."}
    model.model.lm_head = nn.Linear(4, 4)
    assert head_modules(model) == ["classifier"]


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


def test_an_ia3_adapter_with_its_own_targets_loads_back_with_plain_peft(tiny_bert, tmp_path):
    """With target_modules [query, value] PEFT filled the auto feed-forward list with its
    BERT default, output.dense, and saved it: loading checks that list is a subset of the
    targets, so the run trained and saved a model that fintune predict, serve and PEFT
    refused ('feedforward_modules should be a subset of target_modules')."""
    import torch
    from peft import PeftModel

    from fintune.config.schema import IA3Method
    from fintune.models.methods import apply_method

    def scaled_at_input(model) -> set[str]:
        return {
            n.split("encoder.")[-1]
            for n, m in model.named_modules()
            if getattr(m, "is_feedforward", False)
        }

    inputs = {"input_ids": torch.tensor([[2, 7, 9, 11, 3]])}
    # every module whose name ends in output.dense, the attention block's too (README)
    ffn = {f"layer.{i}.{block}output.dense" for i in (0, 1) for block in ("", "attention.")}
    for targets, feedforward, expected_ffn in [
        (["query", "value"], "auto", set()),
        (["dense"], "auto", ffn),  # PEFT's default list for BERT: output.dense
        (["dense"], ["output.dense"], ffn),
        (["key", "output.dense"], ["output.dense"], ffn),
        # a name matches at a dot, as a list does: the pattern's ".*t\.dense" took output.dense
        (["dense"], ["t.dense"], set()),
    ]:
        base = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
        method = IA3Method(target_modules=targets, feedforward_modules=feedforward)
        model = apply_method(base, method).eval()
        assert scaled_at_input(model) == expected_ffn
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.01 if param.requires_grad else 0)  # "trained": a loss shows
            expected = model(**inputs).logits
        folder = tmp_path / f"{targets}{feedforward}"
        model.save_pretrained(folder)
        again = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
        loaded = PeftModel.from_pretrained(again, folder).eval()
        assert scaled_at_input(loaded) == expected_ffn
        torch.testing.assert_close(loaded(**inputs).logits, expected)


def test_prompt_tuning_on_distilbert_builds_and_loads_back(tmp_path):
    """DistilBERT's config names its width `dim` and heads `n_heads`, which PEFT does not
    read: a prompt-tuning run stopped after loading the model with 'method prompt: Please
    specify `token_dim` in `peft_config`', a field fintune does not have."""
    import torch
    from transformers import DistilBertConfig

    from fintune.config.schema import PromptMethod
    from fintune.models.methods import apply_method

    config = DistilBertConfig(vocab_size=64, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path / "base")
    base = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base")
    model = apply_method(base, PromptMethod(num_virtual_tokens=4))
    _same_logits_after_reload(model, tmp_path)


def test_prefix_on_a_multimodal_base_reads_the_text_models_width():
    """A multimodal Gemma-3's config keeps hidden_size in its text_config: prefix tuning
    failed with AttributeError after the weights had loaded."""
    from fintune.config.schema import PrefixMethod
    from tests.conftest import tiny_multimodal_gemma3

    model = tiny_multimodal_gemma3()
    assert peft_config(model, PrefixMethod()).encoder_hidden_size == 32


def test_prompt_tuning_sizes_its_prompt_by_the_input_embeddings_not_the_hidden_size(
    tiny_bert, tmp_path
):
    """ELECTRA-small and ALBERT embed tokens narrower than their hidden size (128 against
    256 and 768): PEFT sized the soft prompt by hidden_size, so a prompt run passed
    validate and died at its first training step (with init_text, while building)."""
    import torch
    from transformers import AutoTokenizer, ElectraConfig

    from fintune.models.methods import apply_method

    size = dict(num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    config = ElectraConfig(vocab_size=64, embedding_size=16, hidden_size=32, **size)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(tmp_path / "base")
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path / "base")
    for method in (PromptMethod(num_virtual_tokens=4), PromptMethod(init_text="profit fell")):
        base = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base")
        _same_logits_after_reload(apply_method(base, method, str(tmp_path / "base")), tmp_path)


def test_prefix_tuning_on_falcon_builds_one_key_and_value_per_key_value_head(tmp_path):
    """Falcon names its key-value heads num_kv_heads (multi_query: one), which PEFT does not
    read: a prefix run passed validate and failed at the first forward."""
    import torch
    from transformers import FalconConfig

    from fintune.config.schema import PrefixMethod
    from fintune.models.methods import apply_method

    size = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    groupings = [{}, {"multi_query": False}, {"new_decoder_architecture": True, "num_kv_heads": 2}]
    for grouping in groupings:
        config = FalconConfig(**size, pad_token_id=0, **grouping)
        torch.manual_seed(0)
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        AutoModelForSequenceClassification.from_config(config).save_pretrained(folder / "base")
        base = AutoModelForSequenceClassification.from_pretrained(folder / "base")
        _same_logits_after_reload(apply_method(base, PrefixMethod(num_virtual_tokens=4)), folder)


def _same_logits_after_reload(model, folder) -> None:
    """The adapter saved into folder/adapter, on folder/base loaded again with plain PEFT,
    gives the logits it gave before the save."""
    import torch
    from peft import PeftModel

    inputs = {"input_ids": torch.tensor([[2, 7, 9, 11, 3]])}
    with torch.no_grad():
        expected = model.eval()(**inputs).logits
    model.save_pretrained(folder / "adapter")
    again = AutoModelForSequenceClassification.from_pretrained(folder / "base")
    loaded = PeftModel.from_pretrained(again, folder / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, expected)


@pytest.mark.parametrize(
    "method",
    [
        LoraMethod(target_modules="all-linear"),
        IA3Method(target_modules=["q_proj", "down_proj"], feedforward_modules=["down_proj"]),
    ],
)
def test_lora_and_ia3_on_a_multimodal_base_adapt_its_language_model_only(method):
    """q_proj, fc1 or all-linear matched the image encoder too: adapters text never runs,
    counted as trainable (5,632 of 9,792 for all-linear), their lora_B still 0 at the end."""
    from tests.conftest import tiny_multimodal_gemma3

    model = apply_method(tiny_multimodal_gemma3(), method)
    adapted = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("language_model" in n for n in adapted)
    other = [n for n in adapted if "vision" in n or "multi_modal_projector" in n]
    assert not other, other[:3]
