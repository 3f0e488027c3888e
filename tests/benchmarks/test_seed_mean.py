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


def _run_with_accuracy(y: np.ndarray, accuracy: float, rng) -> np.ndarray:
    wrong = rng.random(len(y)) > accuracy
    return np.where(wrong, (y + 1) % 3, y)


def test_the_recipe_interval_holds_the_seeds_spread_which_the_examples_interval_leaves_out():
    """Three seeds at 0.80, 0.865 and 0.936 (std 0.07) got an interval of the mean narrower
    than one run's: only the test examples were resampled, the runs taken as they are."""
    from fintune.evaluation.paired import seed_mean_ci

    rng = np.random.default_rng(0)
    y = rng.integers(3, size=2388)
    spread = [(y, _run_with_accuracy(y, a, rng)) for a in (0.80, 0.865, 0.936)]
    examples_only = seed_mean_ci(spread, 3, samples=1000)["accuracy"]
    recipe = seed_mean.recipe_ci(spread, 3, samples=1000)["accuracy"]
    assert examples_only[1] - examples_only[0] < 0.03
    assert recipe[0] < 0.83 and recipe[1] > 0.90  # about the lowest and highest seed
    same = [(y, _run_with_accuracy(y, 0.865, np.random.default_rng(1)))] * 3
    one = seed_mean_ci(same, 3, samples=1000)["accuracy"]
    assert seed_mean.recipe_ci(same, 3, samples=1000)["accuracy"] == pytest.approx(one, abs=0.005)


def test_a_run_given_twice_is_refused(tiny_runs):
    """It counted twice: three runs, the mean and spread over a doubled seed."""
    with pytest.raises(SystemExit, match="given twice"):
        seed_mean.main([str(tiny_runs[0]), str(tiny_runs[1]), str(tiny_runs[0])])
