"""benchmarks/fpb_methods.py and dapt_minilm.py: the parts that run without the shared data."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from fintune.run_dir import hardware, package_versions
from tests.benchmarks.conftest import load_script
from tests.conftest import _tokenizer

fpb_methods = load_script("fpb_methods")
dapt = load_script("dapt_minilm")


def test_each_method_setting_is_a_valid_override_of_the_base_config():
    for name, settings in fpb_methods.METHODS.items():
        config = fpb_methods.config_with(settings)
        assert config.method.name == name


def test_the_table_reads_what_a_run_writes_today(tiny_runs):
    results = {}
    for name, run_dir in zip(("full", "lora"), tiny_runs[1:], strict=True):
        metrics = json.loads((run_dir / "metrics.json").read_text())
        results[name] = {**metrics, "settings": fpb_methods.METHODS[name]}
    env = {"packages": package_versions(), "hardware": hardware("cpu")}
    speed = {
        "steps": 100,
        "batch_size": 16,
        "fintune_samples_per_s": 49.2,
        "plain_trainer_samples_per_s": 12.8,
        "ratio": 49.2 / 12.8,
    }
    section = fpb_methods.write_markdown(results, speed, env, 60.0)
    test = results["lora"]["test"]
    assert f"| lora | {test['accuracy']:.4f} [" in section
    assert f"{results['lora']['train']['trainable_params']:,}" in section
    assert "| **ratio** | **3.84x** |" in section


def test_the_masked_lm_loss_on_masked_positions_only_is_bert_for_masked_lms():
    tokenizer = _tokenizer(decoder=False)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    torch.manual_seed(0)
    model = BertForMaskedLM(config).eval()
    input_ids = torch.randint(5, len(tokenizer), (3, 12))
    labels = torch.full_like(input_ids, -100)
    labels[:, ::4] = input_ids[:, ::4]
    ours = dapt.MaskedPositionsOnly(model)(input_ids=input_ids, labels=labels)["loss"]
    torch.testing.assert_close(ours, model(input_ids=input_ids, labels=labels).loss)


def test_texts_are_cut_into_whole_blocks():
    tokenizer = _tokenizer(decoder=False)
    texts = ["sales rose in the quarter", "profit fell", "the bank reported income"]
    ids = sum(len(tokenizer(t)["input_ids"]) for t in texts)
    blocks = dapt.blocks(texts, tokenizer, 4, seed=0)
    assert len(blocks) == ids // 4
    assert all(len(b) == 4 for b in blocks["input_ids"])


def test_a_new_measurement_never_replaces_the_recorded_one(tmp_path, monkeypatch):
    """`--only full` used to write its one method over the four-method figures."""
    recorded = tmp_path / "fpb_methods.json"
    recorded.write_text('{"results": {}}')
    monkeypatch.setattr(fpb_methods, "OUT", tmp_path)
    monkeypatch.setattr(fpb_methods, "run_methods", lambda names: pytest.fail("measured"))
    with pytest.raises(SystemExit, match="fpb_methods.json exists"):
        fpb_methods.main(["--only", "full", "--skip-throughput"])
    assert recorded.read_text() == '{"results": {}}'


def test_the_adapted_model_is_never_written_over(tmp_path, monkeypatch):
    out = tmp_path / "minilm-fin"
    (out / "model").mkdir(parents=True)
    monkeypatch.setattr(dapt, "corpus", lambda: pytest.fail("pretraining started"))
    with pytest.raises(SystemExit, match="minilm-fin exists"):
        dapt.main(["--out", str(out)])


def test_dapt_prints_the_hardware_its_docstring_promises(tiny_bert, tmp_path, monkeypatch, capsys):
    """A seconds-long pretraining of the tiny model on synthetic sentences: the summary
    it printed held the masked-LM losses and wall time, not the hardware."""
    import shutil
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from tests.conftest import make_sentences

    base = tmp_path / "base"
    shutil.copytree(tiny_bert, base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.mask_token = "[UNK]"  # the tiny vocabulary has no [MASK]
    tokenizer.save_pretrained(base)
    texts = make_sentences(n_per_label=20)["text"].tolist()
    monkeypatch.setattr(dapt, "corpus", lambda: (texts, {"synthetic": len(texts)}))
    monkeypatch.setattr(dapt, "resolve_model", lambda name: SimpleNamespace(name_or_path=base))
    out = tmp_path / "minilm-fin"
    argv = ["--out", str(out), "--epochs", "1", "--head-steps", "2", "--block", "16"]
    dapt.main([*argv, "--batch-size", "8"])
    printed = capsys.readouterr().out
    assert f"hardware: {hardware('cpu')['cpu']}" in printed
    assert (out / "model" / "config.json").is_file()
