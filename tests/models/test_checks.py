"""The checks made before a model's weights load: what is refused, with a message that
names the field, and how many tokens a model takes."""

from __future__ import annotations

import shutil
from pathlib import Path

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

from fintune.errors import FintuneError
from fintune.models import checks
from fintune.models.checks import _position_limit, check_architecture

SMALL = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
BART = dict(d_model=16, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=32, decoder_ffn_dim=32)
BART |= dict(encoder_attention_heads=2, decoder_attention_heads=2)


@pytest.mark.parametrize(
    "method",
    [
        {"feedforward_modules": ["intermediate.dense"]},  # auto targets: key, value, output.dense
        {"target_modules": ["query", "value"], "feedforward_modules": ["output.dense"]},
    ],
)
def test_ia3_feed_forward_modules_that_ia3_does_not_rescale_are_refused(make_config, method):
    """With auto targets PEFT dropped such a list unsaid: intermediate.dense was never
    rescaled, and output.dense lost its feed-forward (input) scaling."""
    config = make_config(method={"name": "ia3", **method})
    with pytest.raises(FintuneError, match=r"method.feedforward_modules: '.*dense' is not among"):
        check_architecture(config)


def test_ia3_feed_forward_modules_among_the_auto_targets_are_taken(make_config):
    check_architecture(make_config(method={"name": "ia3", "feedforward_modules": ["output.dense"]}))


def test_trust_remote_code_on_a_model_without_its_own_code_is_checked_as_any_other(make_config):
    """The architecture check passed the code's revision to a plain BERT's constructor:
    validate refused the config ('cannot build ...: TypeError: ... code_revision'),
    though transformers loads such a model with trust_remote_code set."""
    check_architecture(make_config(model={"trust_remote_code": True}))


@pytest.mark.parametrize("head", ["classifier", "pooler.dense"])
def test_a_lora_target_in_the_classification_head_is_refused(make_config, head):
    """PEFT skipped it unsaid: the head trains whole (modules_to_save), with no LoRA."""
    config = make_config(method={"name": "lora", "target_modules": ["query", head]})
    with pytest.raises(FintuneError, match=rf"method.target_modules: '{head}' is in the class"):
        check_architecture(config)
    check_architecture(make_config(method={"name": "lora", "target_modules": ["dense"]}))


@pytest.mark.parametrize(
    ("backbone", "method", "target", "kind"),
    [
        ("tiny_bert", "lora", "attention", "BertAttention"),
        ("tiny_bert", "dora", "LayerNorm", "LayerNorm"),
        ("tiny_llama", "lora", "mlp", "LlamaMLP"),
        ("tiny_bert", "ia3", "word_embeddings", "Embedding"),
    ],
)
def test_a_module_the_method_cannot_adapt_is_refused_before_the_weights_load(
    make_config, request, backbone, method, target, kind
):
    """`validate` passed it, and `run` failed only once the weights had loaded, with PEFT's
    message quoting the whole module (a block prints every layer inside it)."""
    model_dir = request.getfixturevalue(backbone)
    config = make_config(
        model={"name": str(model_dir)}, method={"name": method, "target_modules": [target]}
    )
    with pytest.raises(FintuneError, match=rf"method.target_modules: '{target}' names {kind} "):
        check_architecture(config)


def test_dora_on_a_multihead_attention_layer_is_refused_before_the_weights_load(make_config):
    """PEFT's LoRA adapts nn.MultiheadAttention but its DoRA does not: the check passed it,
    and PEFT refused it after loading ('... set use_dora to False', a field fintune lacks)."""
    from torch import nn

    class Toy(nn.Module):  # a model whose attention is torch's own
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2)
            self.classifier = nn.Linear(8, 3)

    config = make_config(method={"name": "dora", "target_modules": ["attn"]})
    with pytest.raises(
        FintuneError, match=r"method.target_modules: 'attn' names MultiheadAttention .* dora"
    ):
        checks._check_named_modules(Toy(), config)
    lora = make_config(method={"name": "lora", "target_modules": ["attn"]})
    checks._check_named_modules(Toy(), lora)


def test_qlora_on_a_gguf_model_is_refused_before_the_model_loads(make_config, tiny_gguf):
    """validate passed it, and run failed only at the load, transformers refusing
    ('You cannot combine Quantization and loading a model from a GGUF file')."""
    config = make_config(model={"name": str(tiny_gguf)}, method={"name": "qlora"})
    with pytest.raises(FintuneError, match=r"method qlora: .*tiny.gguf is a GGUF file.* lora"):
        check_architecture(config)
    check_architecture(make_config(model={"name": str(tiny_gguf)}, method={"name": "lora"}))


def test_a_misspelt_module_of_a_gguf_model_is_named_before_the_model_loads(
    make_config, tiny_gguf, monkeypatch
):
    """A GGUF model was checked only once it had loaded: validate said ok to a LoRA target
    PEFT would not find, and run stopped at it only after the data and the load."""
    config = make_config(
        model={"name": str(tiny_gguf)}, method={"name": "lora", "target_modules": ["q_prj"]}
    )
    monkeypatch.setattr(
        "transformers.AutoModelForSequenceClassification.from_pretrained",
        lambda *a, **k: pytest.fail("the weights were loaded"),
    )
    with pytest.raises(FintuneError, match=r"method.target_modules: 'q_prj'.*q_proj"):
        check_architecture(config)
    check_architecture(make_config(model={"name": str(tiny_gguf)}, method={"name": "lora"}))


@pytest.mark.parametrize("keep", [300, 0.5])
def test_a_gguf_file_cut_short_is_named_as_incomplete(make_config, tiny_gguf, tmp_path, keep):
    """An interrupted download: cut in its header, a struct.error traceback from validate;
    cut in its tensors, 'cannot reshape array of size ...' and no more."""
    data = tiny_gguf.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    with pytest.raises(FintuneError, match=r"cut.gguf.*looks incomplete \(an interrupted"):
        check_architecture(make_config(model={"name": str(cut)}, method={"name": "lora"}))


def test_a_safetensors_file_cut_short_is_refused_before_the_load(make_config, tiny_bert, tmp_path):
    """validate said ok; run failed at the load with safetensors' own traceback."""
    folder = tmp_path / "copy"
    shutil.copytree(tiny_bert, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(FintuneError, match=r"copy/model.safetensors is damaged or cut short"):
        check_architecture(make_config(model={"name": str(folder)}))


def _save_model(config, folder: Path) -> None:
    """A tiny random model of this configuration, weights, tokenizer and all (a folder
    holding only config.json is refused as an incomplete copy)."""
    from transformers import AutoModelForSequenceClassification

    from tests.conftest import _tokenizer

    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    _tokenizer(decoder=False).save_pretrained(folder)


@pytest.mark.parametrize("method", ["prefix", "prompt", "lora"])
def test_prefix_tuning_on_a_model_without_past_key_values_is_refused_before_the_load(
    make_config, tmp_path, method
):
    """DeBERTa (as ModernBERT, ALBERT, MPNet) takes no past key values, through which PEFT
    feeds a prefix: validate passed it, and run failed at its first training step with
    PEFT's 'Model does not support past key values which are required for prefix tuning'."""
    from transformers import DebertaV2Config

    size = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    _save_model(DebertaV2Config(vocab_size=64, **size), tmp_path / "deberta")
    config = make_config(model={"name": str(tmp_path / "deberta")}, method=method)
    if method != "prefix":
        check_architecture(config)
        return
    with pytest.raises(FintuneError, match=r"method prefix: .*'deberta-v2' .* past key values"):
        check_architecture(config)
    check_architecture(make_config(method="prefix"))  # BERT takes them


def test_prefix_tuning_on_transformers_that_renamed_past_key_values_names_the_versions(
    make_config, monkeypatch
):
    """transformers 5.24 renamed the argument `cache`; PEFT 0.21.2 looks for the old name and
    refused every prefix-tuned model. The error said the model took no past key values at all."""
    from transformers import BertForSequenceClassification, BertModel

    def renamed(self, input_ids=None, attention_mask=None, cache=None, **kwargs):
        raise AssertionError("not called")

    monkeypatch.setattr(BertModel, "forward", renamed)
    monkeypatch.setattr(BertForSequenceClassification, "forward", renamed)
    with pytest.raises(FintuneError, match=r"names the past key values `cache`.*transformers<5.24"):
        check_architecture(make_config(method="prefix"))


@pytest.mark.parametrize(
    ("method", "field"),
    [
        ({"name": "lora"}, "target_modules"),
        ({"name": "ia3"}, "target_modules"),
        ({"name": "ia3", "target_modules": ["q_lin", "lin2"]}, "feedforward_modules"),
    ],
)
def test_auto_modules_on_a_model_peft_has_no_list_for_are_refused_before_the_load(
    make_config, tmp_path, method, field
):
    """PEFT has no module list for DistilBERT (nor ALBERT, MPNet, ModernBERT): the default
    `lora` passed validate, and run stopped once the model had loaded with PEFT's 'Please
    specify `target_modules` or `target_parameters`in `peft_config`'."""
    from transformers import DistilBertConfig

    distilbert = DistilBertConfig(vocab_size=64, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
    _save_model(distilbert, tmp_path / "distilbert")
    config = make_config(model={"name": str(tmp_path / "distilbert")}, method=method)
    with pytest.raises(
        FintuneError, match=rf"method.{field}: auto .*\(model type 'distilbert'\).* named: .*q_lin"
    ):
        check_architecture(config)
    named = {**method, "target_modules": ["q_lin", "lin2"]}
    if method["name"] == "ia3":
        named["feedforward_modules"] = ["lin2"]
    check_architecture(make_config(model={"name": str(tmp_path / "distilbert")}, method=named))


def test_an_architecture_that_cannot_be_built_is_a_clear_error(make_config, monkeypatch):
    """A remote-code model whose code needs a missing package: one message, no traceback."""
    from transformers import AutoModelForSequenceClassification

    from fintune.models import check_architecture

    def missing(*args, **kwargs):
        raise ImportError("This modeling file requires the following packages: einops")

    monkeypatch.setattr(AutoModelForSequenceClassification, "from_config", missing)
    with pytest.raises(FintuneError, match="cannot build .*'s architecture: ImportError: This mod"):
        check_architecture(make_config())


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


def test_a_missing_local_folder_read_as_a_hub_id_says_so(
    make_config, offline_hub, tmp_path, monkeypatch
):
    """model.name models/minilm beside a models/ folder: read as a hub id, and the hub's
    error never said that no such local folder exists."""
    offline_hub("0" * 40)  # the hub offline: nothing by that name
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "models" / "minilm"
    with pytest.raises(FintuneError, match=rf"if it is a local folder: {missing} does not exist"):
        check_architecture(make_config(model={"name": "models/minilm"}))


def test_a_local_model_without_a_shard_or_without_weights_is_refused_before_the_load(
    make_config, tiny_bert, tmp_path
):
    """validate said ok; run failed at the load ('No such file ... model-00002-of-00004')."""
    from transformers import AutoModelForSequenceClassification

    sharded = tmp_path / "sharded"
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    model.save_pretrained(sharded, max_shard_size="100KB")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        if (tiny_bert / name).is_file():
            shutil.copy(tiny_bert / name, sharded / name)
    check_architecture(make_config(model={"name": str(sharded)}))  # whole: no error
    shard = sorted(sharded.glob("model-*.safetensors"))[1]
    shard.unlink()
    with pytest.raises(FintuneError, match=rf"weight files, but 1 are not in .*{shard.name}"):
        check_architecture(make_config(model={"name": str(sharded)}))
    for path in sharded.glob("model*.safetensors*"):
        path.unlink()
    with pytest.raises(FintuneError, match=r"sharded holds no weights \(no model.safetensors"):
        check_architecture(make_config(model={"name": str(sharded)}))


@pytest.mark.parametrize("method", ["prefix", "prompt"])
def test_virtual_tokens_on_an_encoder_decoder_are_refused_before_training(make_config, method):
    """BART passed the checks (its inner model takes past key values), then failed at the
    first step: prefix with a size mismatch, prompt as BART's classifier takes no input
    embeddings; each left a run folder behind."""
    from transformers import BartConfig, BartForSequenceClassification

    from fintune.models.checks import check_built

    size = dict(d_model=16, encoder_layers=1, decoder_layers=1, vocab_size=50)
    size |= dict(encoder_attention_heads=2, decoder_attention_heads=2)
    size |= dict(encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64)
    bart = BartForSequenceClassification(BartConfig(num_labels=3, **size))
    config = make_config(method={"name": method})
    with pytest.raises(FintuneError, match=rf"method {method}: .* is an encoder-decoder model"):
        check_built(bart, config)


def test_a_token_past_the_embedding_table_is_refused_before_training(
    make_config, tiny_llama, tmp_path
):
    """A pad token added to a decoder's tokenizer, the model not resized: 'validate' said
    ok and 'run' failed at the first training step with an IndexError from torch."""
    from transformers import AutoTokenizer

    model = tmp_path / "llama"
    shutil.copytree(tiny_llama, model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    rows = len(tokenizer)
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    tokenizer.save_pretrained(model)
    with pytest.raises(
        FintuneError,
        match=rf"1 token id\(s\) past the model's embedding table of {rows} rows: '<pad>' "
        rf"\({rows}\)\. .*resize_token_embeddings",
    ):
        check_architecture(make_config(model={"name": str(model)}))
    check_architecture(make_config(model={"name": str(tiny_llama)}))  # its own: taken


def test_a_tokenizer_beside_a_gguf_file_is_refused_before_training(
    make_config, tiny_gguf, tmp_path
):
    """transformers reads a GGUF model's tokenizer from tokenizer files in its folder, with
    none of the special tokens: an encoder's saved there failed with 'no pad token: save
    one into the model's folder', or was trained on."""
    from tests.conftest import _tokenizer

    folder = tmp_path / "gguf"
    folder.mkdir()
    shutil.copy(tiny_gguf, folder / "tiny.gguf")
    config = make_config(model={"name": str(folder / "tiny.gguf")})
    check_architecture(config)  # alone: its own tokenizer
    _tokenizer(decoder=False).save_pretrained(folder)
    with pytest.raises(
        FintuneError,
        match=rf"model.name: {folder} holds tokenizer files \(tokenizer.json, "
        r"tokenizer_config.json\) beside tiny.gguf: .* give the GGUF file a folder of its own",
    ):
        check_architecture(config)


def test_a_gguf_files_own_tokenizer_is_not_read_twice_before_training(
    make_config, tiny_gguf, monkeypatch
):
    """The token-id check read a GGUF file's tokenizer before training, again: 15 s more
    for Gemma-3's 262k tokens, where the file's own tokenizer fits its table anyway."""
    from fintune.models import load

    def refuse(*args, **kwargs):
        raise AssertionError("tokenizer read")

    monkeypatch.setattr(load, "load_tokenizer", refuse)
    check_architecture(make_config(model={"name": str(tiny_gguf)}))


def test_a_module_only_a_multimodal_base_s_image_encoder_has_is_refused(make_config):
    """fc1 is only in Gemma-3's vision tower: validate passed it and run trained the head
    alone, its LoRA weights all 0."""
    from tests.conftest import tiny_multimodal_gemma3

    config = make_config(method={"name": "lora", "target_modules": ["fc1"]})
    with pytest.raises(
        FintuneError, match=r"'fc1' is not a module .* \(only its image or audio encoder has one"
    ) as caught:
        checks._check_named_modules(tiny_multimodal_gemma3(), config)
    assert "fc1" not in str(caught.value).split("named: ")[1]  # its text layers only
    lora = make_config(method={"name": "lora", "target_modules": ["q_proj"]})
    checks._check_named_modules(tiny_multimodal_gemma3(), lora)


def test_a_prompt_init_text_longer_than_its_virtual_tokens_is_refused(make_config):
    """PEFT cut the text to num_virtual_tokens without a word: the soft prompt started from
    its first words alone ('[CLS] sales' of 'sales rose', 4 tokens with [SEP])."""
    method = {"name": "prompt", "init_text": "sales rose", "num_virtual_tokens": 2}
    with pytest.raises(FintuneError, match=r"'sales rose' is 4 tokens .* '\[CLS\] sales' alone"):
        check_architecture(make_config(method=method))
    check_architecture(make_config(method=method | {"num_virtual_tokens": 4}))


@pytest.mark.parametrize(
    ("bias", "targets"),
    [
        ("all", "auto"),
        ("lora_only", "auto"),
        ("lora_only", "all-linear"),
        ("lora_only", ["k_proj"]),
    ],
)
def test_a_lora_bias_setting_with_no_bias_to_train_is_refused(
    make_config, tiny_llama, bias, targets
):
    """Llama's layers have no biases: bias all or lora_only trained just what none does."""
    config = make_config(
        model={"name": str(tiny_llama)},
        method={"name": "lora", "bias": bias, "target_modules": targets},
    )
    with pytest.raises(FintuneError, match=rf"method.bias: {bias} trains the biases of .* none"):
        check_architecture(config)


@pytest.mark.parametrize("bias", ["all", "lora_only"])
def test_a_lora_bias_setting_on_layers_with_biases_is_taken(make_config, bias):
    check_architecture(make_config(method={"name": "lora", "bias": bias}))
