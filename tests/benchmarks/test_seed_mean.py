"""benchmarks/seed_mean.py on finished tiny runs: the mean over runs, its spread and CI."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.benchmarks.conftest import load_script

seed_mean = load_script("seed_mean")


def test_it_prints_each_run_and_the_mean_with_its_spread_and_interval(tiny_runs, capsys):
    seed_mean.main([*map(str, tiny_runs)])
    out = capsys.readouterr().out
    metrics = [json.loads((r / "metrics.json").read_text()) for r in tiny_runs]
    accuracies = [m["test"]["accuracy"] for m in metrics]
    n = len(pd.read_csv(tiny_runs[0] / "predictions_test.csv"))
    assert f"test: n = {n}, 3 runs" in out
    for run, accuracy in zip(tiny_runs, accuracies, strict=True):
        assert f"accuracy {accuracy:.4f}" in out and str(run) in out
    line = re.search(r"accuracy: mean (\S+) ± (\S+) .*\[(\S+), (\S+)\]", out)
    mean, std, low, high = map(float, line.groups())
    assert mean == pytest.approx(np.mean(accuracies), abs=1e-4)
    assert std == pytest.approx(np.std(accuracies, ddof=1), abs=1e-4)
    assert low <= mean <= high and high - low > 0


def test_one_run_or_runs_on_other_examples_are_refused(tiny_runs, tmp_path):
    with pytest.raises(SystemExit, match="at least two seeds"):
        seed_mean.main([str(tiny_runs[0])])
    other = tmp_path / "other"
    shutil.copytree(tiny_runs[1], other, ignore=shutil.ignore_patterns("model"))
    frame = pd.read_csv(other / "predictions_test.csv", dtype=str, keep_default_na=False)
    frame.loc[0, "text"] = "a sentence the other run never saw"
    frame.to_csv(other / "predictions_test.csv", index=False)
    with pytest.raises(SystemExit, match="examples differ"):
        seed_mean.main([str(tiny_runs[0]), str(other)])
