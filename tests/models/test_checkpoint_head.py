"""Starting from a checkpoint that already has a classification head."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from fintune.models.load import load_classifier

LABELS = ["negative", "neutral", "positive"]


def _classifier_with_labels(tiny_bert, folder, labels):
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, id2label=dict(enumerate(labels)), ignore_mismatched_sizes=True
    )
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    return model


def _load(make_config, folder):
    config = make_config(model={"name": str(folder), "max_length": 32})
    model, _, _ = load_classifier(config, LABELS, "cpu")
    return model


def test_a_head_trained_for_other_labels_starts_afresh(make_config, tiny_bert, tmp_path, capsys):
    saved = _classifier_with_labels(tiny_bert, tmp_path / "tweets", ["bearish", "bullish", "x"])
    model = _load(make_config, tmp_path / "tweets")
    assert not torch.equal(model.classifier.weight, saved.classifier.weight)
    assert torch.all(model.classifier.bias == 0)
    assert model.classifier.weight.std() < 0.05  # the config's initializer_range (0.02)
    # the rest of the encoder, pooler included, is the checkpoint's
    assert torch.equal(model.bert.pooler.dense.weight, saved.bert.pooler.dense.weight)
    assert model.config.id2label == dict(enumerate(LABELS))
    assert "New classification head" in capsys.readouterr().err


def test_the_same_labels_in_another_order_keep_the_head_reordered(
    make_config, tiny_bert, tmp_path, capsys
):
    saved = _classifier_with_labels(
        tiny_bert, tmp_path / "finbert", ["positive", "negative", "neutral"]
    )
    model = _load(make_config, tmp_path / "finbert")
    inputs = {"input_ids": torch.tensor([[2, 7, 9, 11, 3]])}
    with torch.no_grad():
        before = saved.eval()(**inputs).logits[0]
        after = model.eval()(**inputs).logits[0]
    torch.testing.assert_close(after, before[[1, 2, 0]])  # negative, neutral, positive
    assert "outputs reordered" in capsys.readouterr().err


def test_a_roberta_style_head_is_replaced_whole(make_config, tmp_path):
    from transformers import RobertaConfig

    from fintune.models.load import _fit_head_to_labels

    config = RobertaConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
    )
    model = AutoModelForSequenceClassification.from_config(config)
    torch.nn.init.constant_(model.classifier.dense.bias, 1.0)
    torch.nn.init.constant_(model.classifier.out_proj.bias, 1.0)
    _fit_head_to_labels(model, ["a", "b", "c"], LABELS)
    assert torch.all(model.classifier.dense.bias == 0)
    assert torch.all(model.classifier.out_proj.bias == 0)


def test_a_head_for_the_same_labels_is_kept(make_config, tiny_bert, tmp_path, capsys):
    saved = _classifier_with_labels(tiny_bert, tmp_path / "same", LABELS)
    model = _load(make_config, tmp_path / "same")
    assert torch.equal(model.classifier.weight, saved.classifier.weight)
    assert "New classification head" not in capsys.readouterr().err


def test_generic_label_names_mean_no_trained_head(make_config, tiny_bert, tmp_path, capsys):
    generic = [f"LABEL_{i}" for i in range(3)]
    saved = _classifier_with_labels(tiny_bert, tmp_path / "generic", generic)
    model = _load(make_config, tmp_path / "generic")
    assert torch.equal(model.classifier.weight, saved.classifier.weight)
    assert "New classification head" not in capsys.readouterr().err


def test_a_generic_head_kept_for_named_labels_is_warned_of(
    make_config, tiny_bert, tmp_path, capsys
):
    """Someone's fine-tune saved without label names (LABEL_0..2) has a trained head of the
    right size: it was kept, its outputs silently taken as this run's labels in order."""
    generic = [f"LABEL_{i}" for i in range(3)]
    saved = _classifier_with_labels(tiny_bert, tmp_path / "generic", generic)
    model = _load(make_config, tmp_path / "generic")
    assert torch.equal(model.classifier.weight, saved.classifier.weight)
    err = " ".join(capsys.readouterr().err.split())
    assert "head with the generic labels LABEL_0, LABEL_1, LABEL_2" in err
    assert "read as negative, neutral, positive" in err


@pytest.mark.parametrize(
    ("problem_type", "labels"),
    [("multi_label_classification", ["esg", "risk", "fraud"]), ("regression", ["score"])],
)
def test_a_checkpoints_problem_type_is_replaced_by_single_label_classification(
    make_config, tiny_bert, tmp_path, problem_type, labels
):
    """The run trains one label per text (softmax, cross-entropy), but a checkpoint's
    multi-label or regression problem_type was kept in the saved config.json: transformers'
    text-classification pipeline then scored a full run's outputs with a sigmoid (or not at
    all), and the model's own loss was BCE or MSE."""
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert,
        id2label=dict(enumerate(labels)),
        problem_type=problem_type,
        ignore_mismatched_sizes=True,
    )
    model.save_pretrained(tmp_path / "tagger")
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path / "tagger")
    loaded = _load(make_config, tmp_path / "tagger")
    assert loaded.config.problem_type == "single_label_classification"
    loaded.save_pretrained(tmp_path / "saved")
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path / "saved")
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(tmp_path / "saved"), top_k=None)
    scores = [s["score"] for s in classify(["profit fell"])[0]]
    assert sum(scores) == pytest.approx(1, abs=1e-5)
