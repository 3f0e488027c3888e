"""benchmarks/ensemble.py on finished tiny runs."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

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
    """The texts of predictions_*.csv are already cleaned: cleaning them again changes
    what the model reads (here an escaped tag, which the second pass strips as a tag)."""
    frame = make_sentences()
    frame["text"] = frame["text"] + " &lt;b&gt;"
    data = tmp_path / "escaped.csv"
    frame.to_csv(data, index=False)
    config = tiny_run_config(
        tiny_bert, data, tmp_path / "runs", data={"cleaning": {"strip_html": True}}
    )
    from fintune.recipes.classification import run

    run_dir = run(config)
    recorded = _predictions(run_dir)
    assert recorded["text"].str.endswith("<b>").all()
    probs, _ = ensemble.probabilities(run_dir, recorded["text"].tolist())
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
