"""Loading a backbone: what must be refused before training, with a message that names
the field."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from fintune.errors import FintuneError
from fintune.models import load
from fintune.models.load import (
    ModelInfo,
    load_classifier,
    load_saved_classifier,
    load_tokenizer,
    save_classifier,
)
from fintune.models.registry import resolve_model

LABELS = ["negative", "neutral", "positive"]


def test_a_model_folder_without_tokenizer_files_is_refused(make_config, tiny_bert, tmp_path):
    """transformers builds a BERT tokenizer with no vocabulary from config.json alone:
    every word became [UNK], and the run trained on nothing without a word said."""
    folder = tmp_path / "weights-only"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_bert / name, folder)
    config = make_config(model={"name": str(folder)})
    with pytest.raises(FintuneError, match=r"model.name: .*weights-only.* no vocabulary"):
        load_tokenizer(resolve_model(config.model.name), config)


def _logits_padded_and_alone(model, tokenizer, texts: list[str]):
    from fintune.training.trainer import collator

    model.eval()
    encoded = [dict(tokenizer(text)) for text in texts]
    batch = collator(tokenizer, model)(encoded)
    with torch.no_grad():
        padded = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        alone = [model(**{k: torch.tensor([v]) for k, v in e.items()}).logits for e in encoded]
    return padded, torch.cat(alone)


def _padding_changes_nothing_before_and_after_save(model, tokenizer, info, folder: Path):
    """A text's logits padded in a batch equal its logits alone, and again after a save
    and reload: the head reads the right token only where the pad id is set right."""
    texts = ["sales rose", "the company profit fell in the quarter"]
    padded, alone = _logits_padded_and_alone(model, tokenizer, texts)
    assert torch.allclose(padded, alone, atol=1e-5)
    save_classifier(model, tokenizer, info, folder)
    model, tokenizer, _ = load_saved_classifier(folder)
    padded, alone = _logits_padded_and_alone(model, tokenizer, texts)
    assert torch.allclose(padded, alone, atol=1e-5)


def test_a_decoder_whose_config_names_another_pad_token_reads_its_last_real_token(
    make_config, tiny_llama, tmp_path
):
    """The tokenizer has no pad token, so it pads with its end-of-sequence token; the
    model's config named id 0. The head looks for the last token that is not the config's
    pad id, so under prefix tuning (padded on the right in training) it read a pad token:
    training saw other logits (0.15 apart) than evaluation and prediction, which pad nothing."""
    base = tmp_path / "pad-zero"
    shutil.copytree(tiny_llama, base)
    settings = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**settings, "pad_token_id": 0}))
    config = make_config(model={"name": str(base)}, method={"name": "prefix"})
    model, tokenizer, info = load_classifier(config, ["negative", "neutral", "positive"], "cpu")
    _padding_changes_nothing_before_and_after_save(model, tokenizer, info, tmp_path / "model")


def test_a_decoder_named_like_an_encoder_is_padded_as_a_decoder(make_config, tiny_bert, tmp_path):
    """ModernBertDecoderForSequenceClassification: "Bert" in its name made it an encoder,
    padded on the right, and its head (`classifier`, not `score`) reads the last position
    under prompt tuning, a pad token for the shorter texts of a batch."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        ModernBertDecoderConfig,
    )

    base = tmp_path / "modernbert-decoder"
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    size = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    settings = ModernBertDecoderConfig(vocab_size=len(tokenizer), pad_token_id=0, **size)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(settings).save_pretrained(base)
    tokenizer.save_pretrained(base)
    config = make_config(model={"name": str(base)}, method={"name": "prompt"})
    model, tokenizer, info = load_classifier(config, LABELS, "cpu")
    assert (info.is_decoder, info.padding_side) == (True, "left")
    _padding_changes_nothing_before_and_after_save(model, tokenizer, info, tmp_path / "model")


def _full_run_naming_own_code(tiny_bert, tmp_path, model_type: str | None = None):
    """A saved full run whose config.json names its own code (auto_map), which leaves a
    marker file if it ever runs: (folder, marker, config.json settings, ModelInfo)."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_bert, folder)
    marker = tmp_path / "code-ran"
    code = f"open({str(marker)!r}, 'w')\nfrom transformers import BertConfig as XConfig\n"
    (folder / "configuration_x.py").write_text(code)
    settings = json.loads((folder / "config.json").read_text())
    if model_type:
        settings["model_type"] = model_type
    settings["auto_map"] = {"AutoConfig": "configuration_x.XConfig"}
    (folder / "config.json").write_text(json.dumps(settings))
    info = ModelInfo("full", str(tiny_bert), None, None, ["a", "b"], 32, "right", False, {})
    return folder, marker, settings, info


def test_a_run_whose_model_runs_its_own_code_is_refused_without_running_it(
    tiny_bert, tmp_path, monkeypatch
):
    """save_pretrained copies a trust_remote_code model's code into the run; loading it
    back was a transformers traceback ('pass trust_remote_code=True')."""
    folder, marker, settings, info = _full_run_naming_own_code(
        tiny_bert,
        tmp_path,
        model_type="xbert",  # known only to its own code
    )
    (folder / "fintune_model.json").write_text(
        json.dumps({**asdict(info), "trust_remote_code": True})
    )
    monkeypatch.setattr(load.AutoTokenizer, "from_pretrained", lambda *a, **k: pytest.fail())
    with pytest.raises(FintuneError, match=r"may run code of its own .*configuration_x.XConfig"):
        load_saved_classifier(folder)  # before the tokenizer, which asks at a terminal
    assert not marker.exists()

    settings.pop("auto_map")  # a lora run: its base would run the code
    (folder / "config.json").write_text(json.dumps(settings))
    lora = {**asdict(info), "method": "lora", "trust_remote_code": True}
    (folder / "fintune_model.json").write_text(json.dumps(lora))
    with pytest.raises(FintuneError, match=rf"code of its own .*the base {tiny_bert}.*=True"):
        load_saved_classifier(folder)


def test_a_gguf_file_of_an_architecture_transformers_cannot_read_names_the_file_and_the_choices(
    make_config, tmp_path
):
    """The message named the folder, not the file, and not which architectures load."""
    import gguf
    import numpy as np

    path = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(path), "rwkv7")
    writer.add_block_count(2)
    writer.add_tensor("token_embd.weight", np.zeros((10, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    config = make_config(model={"name": str(path)})
    pattern = r"model.name: .*odd.gguf: GGUF architecture rwkv7 .* one of .*gemma3, .*llama"
    with pytest.raises(FintuneError, match=pattern):
        load_tokenizer(resolve_model(config.model.name), config)


def test_a_gguf_base_in_bfloat16_is_loaded_dequantised_without_a_packed_weights_warning(
    make_config, tiny_gguf, caplog
):
    """transformers warned, on every load of a GGUF base in bfloat16, of weights 'packed'
    and 'quantized regardless', and to pass float32 (which would change the run's dtype):
    fintune's weights are dequantised, and now asked for so (with `kernels` installed they
    would otherwise stay packed, which fintune neither trains nor saves)."""
    config = make_config(model={"name": str(tiny_gguf), "dtype": "bfloat16"}, method="lora")
    model, _, _ = load_classifier(config, ["negative", "neutral", "positive"], "cpu")
    assert "packed" not in caplog.text
    assert {type(m).__name__ for m in model.modules() if "Linear" in type(m).__name__} == {"Linear"}
    assert {p.dtype for n, p in model.named_parameters() if "lora" not in n} >= {torch.bfloat16}


def test_full_training_keeps_float32_weights_of_a_bfloat16_checkpoint(
    make_config, tiny_bert, tmp_path
):
    """Loaded as saved (bfloat16), every weight trained in bfloat16: an update below its
    resolution is lost, and 47% of a layer's weights never moved in 3 epochs at 5e-5."""
    from transformers import AutoModelForSequenceClassification

    folder = tmp_path / "bf16"
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    model.to(torch.bfloat16).save_pretrained(folder)
    for path in tiny_bert.glob("tokenizer*"):
        shutil.copy(path, folder)
    config = make_config(model={"name": str(folder)})
    model, _, info = load_classifier(config, ["negative", "neutral", "positive"], "cpu")
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert info.dtype == "auto"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_full_training_in_half_precision_weights_is_refused_before_the_data(make_config, dtype):
    from fintune.recipes.classification import setup

    config = make_config(model={"dtype": dtype}, data={"path": "missing.csv"})  # never read
    with pytest.raises(FintuneError, match=rf"model.dtype: {dtype} .* method full .*precision"):
        setup(config)


@pytest.mark.parametrize(
    ("backbone", "method"),
    [("tiny_bert", "lora"), ("tiny_bert", "adapter"), ("tiny_llama", "prefix")],
)
def test_a_bfloat16_bases_head_trains_in_float32(make_config, request, backbone, method):
    """The head trained in the base's bfloat16: updates below its resolution were lost, and
    44% of the head's weights never moved in 3 epochs at 5e-5 (LoRA; 0% in float32)."""
    model_dir = request.getfixturevalue(backbone)
    config = make_config(model={"name": str(model_dir), "dtype": "bfloat16"}, method=method)
    model, tokenizer, _ = load_classifier(config, ["negative", "neutral", "positive"], "cpu")
    trained = {name: p.dtype for name, p in model.named_parameters() if p.requires_grad}
    assert set(trained.values()) == {torch.float32}, trained
    assert next(model.parameters()).dtype == torch.bfloat16  # the frozen base stays
    batch = tokenizer(["sales rose in the quarter"], return_tensors="pt")
    assert model(**batch).logits.dtype == torch.float32  # runs without autocast too


def test_a_revision_of_a_local_model_is_refused_not_ignored(make_config, tiny_bert):
    """transformers reads a local folder as it is: the revision pinned nothing."""
    from fintune.recipes.classification import setup

    config = make_config(model={"name": str(tiny_bert), "revision": "v1.0"}, data={"path": "x"})
    with pytest.raises(FintuneError, match=r"model.revision: .* is a local model, .* hub id"):
        setup(config)


def test_a_run_of_a_model_transformers_knows_is_loaded_though_its_config_names_code(
    tiny_bert, tmp_path
):
    """Hub configs of models transformers has since taken in (Phi-3's, say) still name
    their own code in auto_map, and save_pretrained keeps it: transformers loads them with
    its own classes, never asking, but such a full run was refused for predict and serve."""
    folder, marker, _, info = _full_run_naming_own_code(tiny_bert, tmp_path)  # type: bert
    (folder / "fintune_model.json").write_text(json.dumps(asdict(info)))
    model, _, _ = load_saved_classifier(folder)
    assert type(model).__module__.startswith("transformers.models.bert")
    assert not marker.exists()
    # trained with model.trust_remote_code, on the code's classes: not loaded on others
    (folder / "fintune_model.json").write_text(
        json.dumps({**asdict(info), "trust_remote_code": True})
    )
    with pytest.raises(FintuneError, match=r"may run code of its own .*configuration_x.XConfig"):
        load_saved_classifier(folder)


def test_a_tokenizer_with_nothing_to_pad_with_is_refused_before_training(
    make_config, tiny_llama, tmp_path
):
    """A tokenizer without pad, eos or unk token crashed with a traceback at the first
    padded batch, after the model had loaded and the run directory was made."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from fintune.recipes.classification import run

    folder = tmp_path / "no-specials"
    shutil.copytree(tiny_llama, folder)
    vocab = load_tokenizer(resolve_model(str(tiny_llama)), make_config()).get_vocab()
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    bare = PreTrainedTokenizerFast(tokenizer_object=core)
    for name in folder.glob("tokenizer*"):
        name.unlink()
    bare.save_pretrained(folder)
    config = make_config(model={"name": str(folder)}, method={"name": "lora"})
    with pytest.raises(FintuneError, match=r"model.name: .*no-specials.* no pad, eos or unk"):
        run(config)
    assert not any(Path(config.output.dir).glob("*"))


@pytest.mark.parametrize(
    ("method", "deleted"),
    [
        ("full", "model.safetensors"),
        ("lora", "adapter_model.safetensors"),
        ("lora", "adapter_config.json"),
        ("adapter", "bottleneck_adapter.safetensors"),
    ],
)
def test_a_saved_model_with_a_weight_file_deleted_names_the_file(
    make_config, tmp_path, method, deleted
):
    """`fintune predict` and `serve` stopped with a transformers, PEFT or safetensors
    traceback."""
    model, tokenizer, info = load_classifier(make_config(method={"name": method}), LABELS, "cpu")
    folder = tmp_path / "model"
    save_classifier(model, tokenizer, info, folder)
    (folder / deleted).unlink()
    with pytest.raises(FintuneError, match=rf"model: .*{deleted} is missing"):
        load_saved_classifier(folder)


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_an_adapter_run_records_its_bases_revision_for_a_plain_load(make_config, method, tmp_path):
    """adapter_config.json said revision null: PEFT's AutoPeftModel (and a base loaded by
    its base_model_name_or_path) took the hub model's main branch, not the pinned weights
    the adapter was trained on. (A local folder stands in for the hub model here.)"""
    config = make_config(model={"revision": "a1b2c3d"}, method={"name": method})
    model, tokenizer, info = load_classifier(config, LABELS, "cpu")
    save_classifier(model, tokenizer, info, tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "adapter_config.json").read_text())
    assert saved["revision"] == "a1b2c3d"


def test_a_prompt_init_texts_tokenizer_is_read_at_the_bases_revision(make_config, tmp_path):
    """PEFT loads the tokenizer that turns method.init_text into tokens again, by name: a
    hub base pinned with model.revision had its init text read by the main branch's
    tokenizer (offline, with only the pinned revision cached: not found at all)."""
    config = make_config(
        model={"revision": "a1b2c3d"}, method={"name": "prompt", "init_text": "net sales"}
    )
    model, tokenizer, info = load_classifier(config, LABELS, "cpu")
    save_classifier(model, tokenizer, info, tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "adapter_config.json").read_text())
    assert saved["tokenizer_kwargs"] == {"revision": "a1b2c3d"}


@pytest.mark.parametrize(
    ("revision", "commit", "reloaded_at"),
    [
        (None, "c0ffee1", "c0ffee1"),
        ("main", "c0ffee1", "c0ffee1"),  # a branch moves: the commit the run trained on
        (None, None, None),  # environment.json without a commit (or none at all)
    ],
)
def test_an_adapter_runs_hub_base_is_reloaded_at_the_commit_it_trained_on(
    make_config, tiny_bert, tmp_path, monkeypatch, revision, commit, reloaded_at
):
    """predict and serve reloaded an unpinned hub base at revision None, the hub's main
    branch today: an adapter served a month later could sit on other base weights than it
    trained on, though environment.json records model_commit. (A local folder stands in
    for the hub model: from_pretrained is redirected to it, and records its arguments.)"""
    model, tokenizer, info = load_classifier(make_config(method={"name": "lora"}), LABELS, "cpu")
    run_dir = tmp_path / "run"
    save_classifier(model, tokenizer, info, run_dir / "model")
    saved = json.loads((run_dir / "model" / "fintune_model.json").read_text())
    saved.update(base="org/tiny-bert", hub_id="org/tiny-bert", revision=revision)
    (run_dir / "model" / "fintune_model.json").write_text(json.dumps(saved))
    if commit:
        (run_dir / "environment.json").write_text(json.dumps({"model_commit": commit}))
    real = load.AutoModelForSequenceClassification.from_pretrained
    calls = []

    def from_pretrained(name, **kwargs):
        calls.append((name, kwargs.get("revision")))
        return real(tiny_bert if name == "org/tiny-bert" else name, **{**kwargs, "revision": None})

    monkeypatch.setattr(load.AutoModelForSequenceClassification, "from_pretrained", from_pretrained)
    load_saved_classifier(run_dir / "model")
    assert calls == [("org/tiny-bert", reloaded_at if commit else revision)]


def test_a_composite_configs_pad_token_is_set_where_its_classifier_reads_it(tmp_path):
    """A multimodal Gemma-3's classifier reads the pad id from its text_config: fintune set
    it on the top-level config only, and a base whose text config has none stopped the
    first batch of two ('Cannot handle batch sizes > 1 if no padding token is defined'),
    in training and again in a saved adapter's reload."""
    from transformers import AutoModelForSequenceClassification, Gemma3Config

    from tests.conftest import _tokenizer, make_sentences, tiny_run_config

    tokenizer = _tokenizer(decoder=True)
    text = {"num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1}
    base = Gemma3Config(
        text_config={
            **text,
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "head_dim": 16,
            "eos_token_id": 4,
            "bos_token_id": 4,
            "pad_token_id": None,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 28,
            "patch_size": 14,
        },
        mm_tokens_per_image=4,
        image_token_index=len(tokenizer) - 1,
    )
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(base).save_pretrained(tmp_path / "gemma3")
    tokenizer.save_pretrained(tmp_path / "gemma3")
    make_sentences().to_csv(tmp_path / "d.csv", index=False)
    config = tiny_run_config(
        tmp_path / "gemma3",
        tmp_path / "d.csv",
        tmp_path / "runs",
        method={"name": "lora", "target_modules": ["q_proj", "v_proj"]},
    )
    model, tokenizer, info = load_classifier(config, LABELS, "cpu")
    assert model.config.get_text_config().pad_token_id == tokenizer.pad_token_id == 4
    _padding_changes_nothing_before_and_after_save(model, tokenizer, info, tmp_path / "model")


def test_a_hub_models_commit_is_read_from_the_hub_cache_it_loaded_from(
    tiny_bert, offline_hub, monkeypatch
):
    """transformers 5 no longer notes the commit on the config (config._commit_hash): every
    run's environment.json said model_commit null, so an unpinned run could not be pinned
    after it, and predict/serve never reloaded an adapter's base at its commit. A load
    records the commit its revision resolved to in the hub cache (refs/), read here."""
    commit = "c0ffee" * 6 + "c0ff"
    offline_hub(commit, ("main", "v1"))
    model = load.AutoModelForSequenceClassification.from_pretrained("org/tiny-bert")
    assert getattr(model.config, "_commit_hash", None) is None  # what was read before
    assert load.hub_commit(model, "org/tiny-bert", None) == commit
    assert load.hub_commit(model, "org/tiny-bert", "v1") == commit
    assert load.hub_commit(model, "org/tiny-bert", commit) == commit
    assert load.hub_commit(model, "org/tiny-bert", "v2") is None  # not in the cache: unknown
    assert load.hub_commit(model, "org/other", None) is None
    assert load.hub_commit(model, str(tiny_bert), None) is None  # a local folder: read as it is
    import transformers.utils.hub

    model.config._commit_hash = "dec0de" * 6 + "dec0"  # an earlier transformers notes it
    monkeypatch.delattr(transformers.utils.hub, "resolve_revision")
    assert load.hub_commit(model, "org/tiny-bert", None) == "dec0de" * 6 + "dec0"


def test_an_adapters_base_missing_at_its_commit_offline_names_the_commit(
    make_config, tmp_path, offline_hub
):
    """predict and serve reload an adapter's hub base at the commit it trained on: offline,
    with the hub cache holding the base at another commit only, the load stopped with
    transformers' 'couldn't connect ... couldn't find them in the cached files', under
    predict's 'is the run complete?', naming neither the commit nor how to fetch it."""

    model, tokenizer, info = load_classifier(make_config(method={"name": "lora"}), LABELS, "cpu")
    run_dir = tmp_path / "run"
    save_classifier(model, tokenizer, info, run_dir / "model")
    saved = json.loads((run_dir / "model" / "fintune_model.json").read_text())
    saved.update(base="org/tiny-bert", hub_id="org/tiny-bert")
    (run_dir / "model" / "fintune_model.json").write_text(json.dumps(saved))
    trained, cached = "c0ffee" * 6 + "c0ff", "dec0de" * 6 + "dec0"
    (run_dir / "environment.json").write_text(json.dumps({"model_commit": trained}))
    offline_hub(cached)
    with pytest.raises(FintuneError) as error:
        load_saved_classifier(run_dir / "model")
    message = str(error.value)
    assert f"base model org/tiny-bert at commit {trained}" in message
    assert "environment.json" in message and "--revision " + trained in message


@pytest.mark.parametrize(
    "damaged", ['{"model_commit": "c0ff', "[]", '{"model_commit": 7}', b"\xff{}"]
)
def test_a_damaged_environment_json_is_named_not_read_as_no_commit(
    make_config, tmp_path, offline_hub, damaged
):
    """An adapter's hub base is reloaded at environment.json's model_commit, at
    model.revision where it is null or the file is gone; a damaged one (cut short by a
    partial copy, edited) was read as no commit: the base loaded from the hub's main
    branch, other weights than the adapter trained on, without a word. A local base has
    no commit to read: its run still loads."""

    model, tokenizer, info = load_classifier(make_config(method={"name": "lora"}), LABELS, "cpu")
    run_dir = tmp_path / "run"
    save_classifier(model, tokenizer, info, run_dir / "model")
    write = (run_dir / "environment.json").write_bytes
    write(damaged if isinstance(damaged, bytes) else damaged.encode())
    load_saved_classifier(run_dir / "model")  # a local base
    saved = json.loads((run_dir / "model" / "fintune_model.json").read_text())
    saved.update(base="org/tiny-bert", hub_id="org/tiny-bert")
    (run_dir / "model" / "fintune_model.json").write_text(json.dumps(saved))
    offline_hub("dec0de" * 6 + "dec0")
    with pytest.raises(FintuneError, match=r"run/environment.json: .*model_commit"):
        load_saved_classifier(run_dir / "model")
    (run_dir / "environment.json").write_text('{"seed": 1}')  # an earlier version's record
    load_saved_classifier(run_dir / "model")


@pytest.mark.parametrize("method", ["lora", "adapter"])
def test_an_adapter_runs_local_base_changed_since_training_is_refused(
    tiny_bert, sentences_csv, tmp_path, method
):
    """A local base trained again or overwritten in place was loaded under the adapter
    without a word: predict and serve gave other confidences (labels changed) than the run
    recorded, though environment.json records the base's model_sha256."""
    from transformers import AutoModelForSequenceClassification

    from fintune.recipes.classification import run
    from tests.conftest import tiny_run_config

    base = tmp_path / "base"
    shutil.copytree(tiny_bert, base)
    run_dir = run(tiny_run_config(base, sentences_csv, tmp_path / "runs", method={"name": method}))
    load_saved_classifier(run_dir / "model")  # unchanged: loads
    (base / "README.md").write_text("a model card edit changes nothing computed")
    load_saved_classifier(run_dir / "model")
    model = AutoModelForSequenceClassification.from_pretrained(base)
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight.add_(0.1)
    model.save_pretrained(base)
    with pytest.raises(FintuneError) as error:
        load_saved_classifier(run_dir / "model")
    message = " ".join(str(error.value).split())
    assert message.startswith(
        f"base model {base}: its files changed since the run trained on it (sha256 "
    )
    assert "not environment.json's model_sha256" in message
    (run_dir / "environment.json").write_text('{"seed": 1}')  # an earlier version's record
    load_saved_classifier(run_dir / "model")


def test_a_bottleneck_runs_own_plain_loader_is_not_named_as_the_models_code(make_config):
    """Its config.json names fintune_bottleneck.py, which fintune itself never runs: the
    refusal of a run trained with model.trust_remote_code named it as the model's code."""
    from fintune.recipes.classification import run

    folder = run(make_config(method={"name": "adapter"})) / "model"
    assert (
        "AutoModelForSequenceClassification"
        in json.loads((folder / "config.json").read_text())["auto_map"]
    )
    info = json.loads((folder / "fintune_model.json").read_text())
    (folder / "fintune_model.json").write_text(json.dumps({**info, "trust_remote_code": True}))
    with pytest.raises(
        FintuneError, match=r"may run code of its own \(model.trust_remote_code: the base"
    ) as error:
        load_saved_classifier(folder)
    assert "fintune_bottleneck" not in str(error.value)


def test_a_saved_adapter_names_the_commit_its_run_loaded_not_where_main_is_now(
    make_config, tmp_path, offline_hub
):
    """The commit was looked up again in the hub cache when saving, after training: had
    another process fetched a newer main meanwhile, adapter_config.json named that commit
    while environment.json named the one the run trained on."""
    import shutil

    trained, moved = "c0ffee" * 6 + "c0ff", "dec0de" * 6 + "dec0"
    repo = offline_hub(trained)
    config = make_config(model={"name": "org/tiny-bert"}, method={"name": "lora"})
    model, tokenizer, info = load_classifier(config, LABELS, "cpu")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "environment.json").write_text(json.dumps({"model_commit": trained}))
    shutil.copytree(repo / "snapshots" / trained, repo / "snapshots" / moved)
    (repo / "refs" / "main").write_text(moved)  # fetched while the run trained
    assert load.hub_commit(model, "org/tiny-bert", None) == moved
    save_classifier(model, tokenizer, info, run_dir / "model")
    saved = json.loads((run_dir / "model" / "adapter_config.json").read_text())
    assert saved["revision"] == trained


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("bitsandbytes") is None, reason="no bitsandbytes"
)
@pytest.mark.parametrize(
    ("architecture", "front", "targets"),
    [("deberta-v2", "pooler", "auto"), ("modernbert", "head", ["Wqkv"])],
)
def test_a_qlora_base_keeps_every_head_layer_unquantised(tmp_path, architecture, front, targets):
    """DeBERTa's pooler sits at the top (`pooler.dense`), where the skip pattern
    `.*\\.pooler` did not reach: it loaded in 4 bits, and PEFT's trainable copy of it
    failed ('only Tensors of floating point dtype can require gradients'); so did BART's
    classification_head. ModernBERT's `head` (dense + norm) was not taken for the head at
    all, and stayed frozen."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from tests.conftest import make_sentences, tiny_run_config

    size = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    folder = tmp_path / architecture
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(_bert_folder(tmp_path))
    ids = dict(pad_token_id=0, bos_token_id=2, eos_token_id=3, cls_token_id=2, sep_token_id=3)
    base = AutoConfig.for_model(
        architecture, vocab_size=len(tokenizer), max_position_embeddings=64, **size, **ids
    )
    AutoModelForSequenceClassification.from_config(base).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    make_sentences().to_csv(tmp_path / "d.csv", index=False)
    method = {"name": "qlora", "target_modules": targets}
    config = tiny_run_config(folder, tmp_path / "d.csv", tmp_path / "runs", method=method)
    model, _, _ = load_classifier(config, LABELS, "cpu")
    head = {n: p for n, p in model.named_parameters() if "modules_to_save" in n}
    assert any(f".{front}." in n for n in head) and any("classifier" in n for n in head)
    assert all(p.dtype == torch.float32 and p.requires_grad for p in head.values())


def _bert_folder(tmp_path: Path) -> Path:
    from tests.conftest import _save_tiny

    return _save_tiny(tmp_path / "bert", decoder=False)


def test_a_gguf_bases_prompt_init_text_longer_than_its_virtual_tokens_is_refused(
    make_config, tiny_gguf
):
    """validate leaves a GGUF file's tokenizer unread (15 s for Gemma-3): the build checks."""
    method = {"name": "prompt", "init_text": "net sales rose sharply", "num_virtual_tokens": 2}
    config = make_config(model={"name": str(tiny_gguf)}, method=method)
    with pytest.raises(FintuneError, match=r"method.init_text: .* more than num_virtual_tokens 2"):
        load_classifier(config, LABELS, "cpu")
