import json

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    GPT2Config,
    GPTJConfig,
    LlamaConfig,
    ModernBertConfig,
    OPTConfig,
)

from fintune.errors import FintuneError
from fintune.models.bottleneck import (
    ADAPTER_ATTR,
    add_bottleneck_adapters,
    load_bottleneck,
    save_bottleneck,
)

SIZE = dict(num_hidden_layers=2, num_attention_heads=2, vocab_size=50)
# where a plain load would find the base: these tests load through fintune only
BASE = {"name_or_path": "not-used", "revision": None, "gguf_file": None, "dtype": "auto"}


def _model(kind: str):
    configs = {
        "bert": BertConfig(hidden_size=32, intermediate_size=64, **SIZE),
        "llama": LlamaConfig(hidden_size=32, intermediate_size=64, pad_token_id=0, **SIZE),
        "gpt2": GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=50, pad_token_id=0),
        "opt": OPTConfig(hidden_size=32, ffn_dim=64, word_embed_proj_dim=32, **SIZE),
        "gptj": GPTJConfig(
            n_embd=32, n_layer=2, n_head=2, vocab_size=50, rotary_dim=8, pad_token_id=0
        ),
        "modernbert": ModernBertConfig(
            hidden_size=32, intermediate_size=64, pad_token_id=0, **SIZE
        ),
    }
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(configs[kind]).eval()


@pytest.mark.parametrize(
    ("kind", "suffix"),
    [
        ("bert", "output.dense"),
        ("llama", "mlp.down_proj"),
        ("gpt2", "mlp.c_proj"),
        # refused as 'no feed-forward blocks found' before
        ("opt", "fc2"),  # layers.N.fc2
        ("gptj", "mlp.fc_out"),
        ("modernbert", "mlp.Wo"),
    ],
)
def test_one_adapter_per_feed_forward_block(kind, suffix):
    model = _model(kind)
    names = add_bottleneck_adapters(model, reduction_factor=8)
    assert len(names) == 2 and all(n.endswith(suffix) for n in names)
    assert not any("attention" in n for n in names)


def test_a_multimodal_base_gets_adapters_in_its_language_model_only():
    """A multimodal Gemma-3's image encoder never runs on text: adapters there trained
    nothing, counted as trainable, and its width (48 here) refused a reduction factor that
    fits the language model's (32)."""
    from fintune.models.bottleneck import check_reduction_factor
    from tests.conftest import tiny_multimodal_gemma3

    model = tiny_multimodal_gemma3(vision_width=48)
    check_reduction_factor(model, 32)
    assert add_bottleneck_adapters(model, 32) == ["model.language_model.layers.0.mlp.down_proj"]


@pytest.mark.parametrize("kind", ["bert", "llama", "gpt2", "opt", "gptj", "modernbert"])
def test_a_fresh_adapter_is_the_identity(kind):
    model = _model(kind)
    inputs = torch.randint(1, 50, (2, 6))
    before = model(input_ids=inputs).logits
    add_bottleneck_adapters(model, reduction_factor=4)
    after = model(input_ids=inputs).logits
    torch.testing.assert_close(before, after)


def test_adapter_changes_output_once_trained_and_round_trips(tmp_path):
    model = _model("bert")
    add_bottleneck_adapters(model, reduction_factor=4, non_linearity="gelu")
    for name, param in model.named_parameters():
        if ADAPTER_ATTR in name:
            torch.nn.init.normal_(param, std=0.5)
    inputs = torch.randint(1, 50, (2, 6))
    logits = model(input_ids=inputs).logits
    settings = {"reduction_factor": 4, "non_linearity": "gelu", "dropout": 0.0}
    save_bottleneck(model, tmp_path, settings, ("classifier.", "bert.pooler."), BASE)
    fresh = _model("bert")  # same seed: same base weights
    assert not torch.allclose(fresh(input_ids=inputs).logits, logits)
    loaded = load_bottleneck(fresh, tmp_path)
    torch.testing.assert_close(loaded(input_ids=inputs).logits, logits)


def test_an_adapter_file_without_its_head_is_refused_not_given_a_random_one(tmp_path):
    from safetensors.torch import load_file, save_file

    model = _model("bert")
    add_bottleneck_adapters(model, reduction_factor=4)
    settings = {"reduction_factor": 4, "non_linearity": "relu", "dropout": 0.0}
    save_bottleneck(model, tmp_path, settings, ("classifier.", "bert.pooler."), BASE)
    weights = load_file(str(tmp_path / "bottleneck_adapter.safetensors"))
    save_file(
        {k: v for k, v in weights.items() if not k.startswith("classifier.")},
        str(tmp_path / "bottleneck_adapter.safetensors"),
    )
    with pytest.raises(FintuneError, match=r"do not fit this model \(missing \['classifier"):
        load_bottleneck(_model("bert"), tmp_path)


def test_gradients_reach_the_adapter():
    model = _model("llama").train()
    add_bottleneck_adapters(model, reduction_factor=4)
    out = model(input_ids=torch.randint(1, 50, (2, 6)), labels=torch.tensor([0, 1]))
    out.loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if f"{ADAPTER_ATTR}.up" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(FintuneError, match="no feed-forward blocks"):
        add_bottleneck_adapters(torch.nn.Sequential(torch.nn.Linear(4, 4)), reduction_factor=2)


def test_distilbert_pre_classifier_is_part_of_the_head():
    from transformers import DistilBertConfig

    from fintune.models.methods import head_modules

    model = AutoModelForSequenceClassification.from_config(
        DistilBertConfig(vocab_size=50, dim=32, hidden_dim=64, n_layers=2, n_heads=2)
    )
    assert {"classifier", "pre_classifier"} <= set(head_modules(model))


@pytest.mark.parametrize(("factor", "why"), [(3, "does not divide"), (128, "is more than")])
def test_a_reduction_factor_that_does_not_fit_the_width_is_refused_before_the_run(
    make_config, factor, why
):
    """hidden 64 // 3 made 21-wide adapters, and any factor over 64 a 1-wide one, silently."""
    from transformers import AutoModelForSequenceClassification

    from fintune.models import check_architecture
    from fintune.models.methods import apply_method

    config = make_config(method={"name": "adapter", "reduction_factor": factor})
    pattern = f"method.reduction_factor: {factor} {why} .* 64.* 1, 2, 4, 8, 16, 32"
    with pytest.raises(FintuneError, match=pattern):
        check_architecture(config)  # validate, and run before any weights load
    with pytest.raises(FintuneError, match=pattern):
        model = AutoModelForSequenceClassification.from_pretrained(config.model.name)
        apply_method(model, config.method)  # and again once the weights have loaded


def test_the_saved_config_names_only_the_plain_loader(tmp_path):
    """A base whose config names its own code kept that entry: a plain load then looked
    for the base's code in the run's folder, which does not hold it."""
    model = _model("bert")
    model.config.auto_map = {"AutoConfig": "configuration_x.XConfig"}
    add_bottleneck_adapters(model, reduction_factor=4)
    settings = {"reduction_factor": 4, "non_linearity": "relu", "dropout": 0.0}
    save_bottleneck(model, tmp_path, settings, ("classifier.", "bert.pooler."), BASE)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"] == {
        "AutoModelForSequenceClassification": "fintune_bottleneck.BottleneckAdapterClassifier"
    }
    assert (tmp_path / "fintune_bottleneck.py").is_file()
