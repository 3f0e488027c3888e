"""benchmarks/ensemble.py on finished tiny runs."""

from __future__ import annotations

import json
import re
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from fintune.recipes.classification import run
from tests.benchmarks.conftest import load_script
from tests.conftest import make_sentences, tiny_run_config

ensemble = load_script("ensemble")


def _predictions(run_dir, split="test") -> pd.DataFrame:
    return pd.read_csv(run_dir / f"predictions_{split}.csv", dtype=str, keep_default_na=False)


def test_each_run_scores_as_recorded_and_the_ensemble_averages_probabilities(tiny_runs, capsys):
    ensemble.main([str(r) for r in tiny_runs])
    out = capsys.readouterr().out
    for run_dir in tiny_runs:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        for split in ("validation", "test"):
            assert f"{metrics[split]['accuracy']:.4f}  {run_dir}" in out
    frame = _predictions(tiny_runs[0])
    texts, truth = frame["text"].tolist(), frame["label"].to_numpy()
    members = [ensemble.probabilities(r, texts) for r in tiny_runs]
    labels = members[0][1]
    voted = np.array(labels)[np.mean([m[0] for m in members], axis=0).argmax(1)]
    line = re.search(r"test: n = \d+\n(?:.*\n)*?  (\S+)  ensemble of 3  95% CI", out)
    assert float(line.group(1)) == pytest.approx((voted == truth).mean(), abs=5e-5)


def test_a_runs_probabilities_are_those_it_recorded_even_with_cleaning(
    tiny_bert, tmp_path, sentences_file
):
    """The model read predictions_*.csv's cleaned_text: cleaning it again changes what
    the model reads (here an escaped tag, which the second pass strips as a tag)."""
    frame = make_sentences()
    frame["text"] = frame["text"] + " &lt;b&gt;"
    data = tmp_path / "escaped.csv"
    frame.to_csv(data, index=False)
    config = tiny_run_config(
        tiny_bert, data, tmp_path / "runs", data={"cleaning": {"strip_html": True}}
    )
    run_dir = run(config)
    recorded = _predictions(run_dir)
    assert recorded["cleaned_text"].str.endswith("<b>").all()
    probs, _ = ensemble.probabilities(run_dir, ensemble.model_inputs(recorded))
    np.testing.assert_allclose(probs.max(1), recorded["confidence"].astype(float), atol=1e-5)


def test_runs_on_different_examples_are_refused(tiny_runs, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_runs[1], other)
    frame = _predictions(other, "validation")
    frame.loc[0, "text"] = "a sentence the other run never saw"
    frame.to_csv(other / "predictions_validation.csv", index=False)
    with pytest.raises(SystemExit, match="validation examples differ"):
        ensemble.main([str(tiny_runs[0]), str(other)])


def _phrasebank(folder, frame: pd.DataFrame) -> dict[str, str]:
    """Synthetic nested agreement files in Financial PhraseBank's `sentence@label` format:
    every fourth sentence in all four, the next in three, and so on; returns each text's
    level."""
    folder.mkdir()
    levels = list(ensemble.AGREEMENT_FILES)  # most agreement first
    level_of = {text: levels[i % 4] for i, text in enumerate(frame["text"])}
    for rank, name in enumerate(ensemble.AGREEMENT_FILES.values()):
        rows = [
            f"{text}@{label}"
            for text, label in zip(frame["text"], frame["label"], strict=True)
            if levels.index(level_of[text]) <= rank
        ]
        (folder / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return level_of


def test_test_accuracy_by_annotator_agreement(tiny_bert, tmp_path, capsys):
    frame = make_sentences()
    level_of = _phrasebank(tmp_path / "fpb", frame)
    data = {"path": str(tmp_path / "fpb" / "Sentences_50Agree.txt"), "format": "fpb"}
    run_dir = run(tiny_run_config(tiny_bert, tmp_path, tmp_path / "runs", data=data))
    test = _predictions(run_dir)
    assert ensemble.agreement_levels(tmp_path / "fpb", test["text"].tolist()) == [
        level_of[t] for t in test["text"]
    ]
    ensemble.main([str(run_dir), "--fpb-agreement", str(tmp_path / "fpb")])
    out = capsys.readouterr().out
    right = test["predicted"] == test["label"]
    for level in ensemble.AGREEMENT_FILES:
        mask = test["text"].map(level_of) == level
        assert f"{level:>7}  n = {mask.sum():4d}  {right[mask].mean():.3f}" in out


def test_a_text_that_is_no_phrasebank_sentence_is_named(tmp_path):
    _phrasebank(tmp_path / "fpb", make_sentences(n_per_label=2))
    with pytest.raises(SystemExit, match="not a Financial PhraseBank sentence: 'no such'"):
        ensemble.agreement_levels(tmp_path / "fpb", ["no such"])


def test_runs_whose_examples_carry_other_labels_are_refused(tiny_runs, tmp_path):
    """Same texts, one reference label changed (a relabelled data file): the ensemble used
    to score every run against the first run's labels."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_runs[1], other)
    frame = _predictions(other)
    frame.loc[0, "label"] = next(v for v in frame["label"].unique() if v != frame.loc[0, "label"])
    frame.to_csv(other / "predictions_test.csv", index=False)
    with pytest.raises(SystemExit, match="test labels differ"):
        ensemble.main([str(tiny_runs[0]), str(other)])


def test_it_prints_the_hardware(tiny_runs, capsys):
    from fintune.run_dir import hardware

    ensemble.main([str(tiny_runs[0])])
    assert f"hardware: {hardware('cpu')['cpu']}" in capsys.readouterr().out


def test_a_run_given_twice_is_refused(tiny_runs, monkeypatch):
    monkeypatch.setattr(ensemble, "probabilities", lambda *a: pytest.fail("scored"))
    with pytest.raises(SystemExit, match="given twice"):
        ensemble.main([str(tiny_runs[0]), str(tiny_runs[1]), str(tiny_runs[0])])


def test_a_run_with_no_test_predictions_is_named_before_any_is_scored(
    tiny_runs, tmp_path, monkeypatch
):
    """A run made with evaluation.test: false has no predictions_test.csv: the script
    scored every model on validation, then failed with pandas' FileNotFoundError."""
    partial = tmp_path / "no-test"
    shutil.copytree(tiny_runs[1], partial, ignore=shutil.ignore_patterns("model"))
    (partial / "predictions_test.csv").unlink()
    monkeypatch.setattr(ensemble, "probabilities", lambda *a: pytest.fail("scored"))
    with pytest.raises(SystemExit, match="no-test: no predictions_test.csv"):
        ensemble.main([str(tiny_runs[0]), str(partial)])


def test_an_agreement_level_without_test_sentences_shows_n_0_not_nan(
    tiny_runs, monkeypatch, capsys
):
    """A test set of one agreement level printed 'n =    0  nan  (nan nan nan)' for the
    others, with numpy's "Mean of empty slice" warnings."""
    top = next(iter(ensemble.AGREEMENT_FILES))
    monkeypatch.setattr(ensemble, "agreement_levels", lambda folder, texts: [top] * len(texts))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy's empty-slice mean
        ensemble.main([*map(str, tiny_runs), "--fpb-agreement", "unused"])
    out = capsys.readouterr().out
    assert "nan" not in out
    for level in list(ensemble.AGREEMENT_FILES)[1:]:
        assert f"  {level:>7}  n =    0\n" in out
