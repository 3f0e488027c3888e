"""benchmarks/paired_runs.py on finished tiny runs."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from tests.benchmarks.conftest import load_script

paired_runs = load_script("paired_runs")


def _predictions(run_dir, split="test") -> pd.DataFrame:
    return pd.read_csv(run_dir / f"predictions_{split}.csv", dtype=str, keep_default_na=False)


def test_it_pairs_two_runs_and_counts_the_disagreements(tiny_runs, capsys):
    a, b = tiny_runs[0], tiny_runs[2]
    paired_runs.main([str(a), str(b)])
    out = capsys.readouterr().out
    pa, pb = _predictions(a), _predictions(b)
    right_a, right_b = pa["predicted"] == pa["label"], pb["predicted"] == pb["label"]
    assert f"test: n = {len(pa)}" in out
    for run_dir in (a, b):
        test = json.loads((run_dir / "metrics.json").read_text())["test"]
        assert f"accuracy {test['accuracy']:.4f}  macro-F1 {test['f1_macro']:.4f}  {run_dir}" in out
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    assert f"McNemar: {only_a} right only for A, {only_b} only for B" in out
    assert "B - A accuracy:" in out and "B - A f1_macro:" in out


def test_the_validation_split_can_be_paired(tiny_runs, capsys):
    paired_runs.main([str(tiny_runs[0]), str(tiny_runs[1]), "--split", "validation"])
    assert f"validation: n = {len(_predictions(tiny_runs[0], 'validation'))}" in (
        capsys.readouterr().out
    )


def test_runs_on_different_examples_are_refused(tiny_runs, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_runs[1], other, ignore=shutil.ignore_patterns("model"))
    frame = _predictions(other)
    frame.loc[0, "text"] = "a sentence the other run never saw"
    frame.to_csv(other / "predictions_test.csv", index=False)
    with pytest.raises(SystemExit, match="examples differ; they cannot be paired"):
        paired_runs.main([str(tiny_runs[0]), str(other)])


def test_a_folder_without_predictions_is_named(tiny_runs, tmp_path):
    with pytest.raises(SystemExit, match="no predictions_test.csv"):
        paired_runs.main([str(tiny_runs[0]), str(tmp_path)])


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ('"text","label","predicted"\n"Sales ro', "damaged or cut short"),
        ("", "damaged or cut short"),
        ('"text","label","predicted"\n', "not a run's predictions (no rows)"),
        ('"text","label"\n"a","b"\n', "not a run's predictions (no predicted column)"),
    ],
)
def test_a_damaged_predictions_file_is_named_not_a_traceback(tiny_runs, tmp_path, content, said):
    """A file cut short, empty, header-only or without `predicted` stopped with pandas'
    or numpy's traceback (ParserError, EmptyDataError, TypeError, KeyError)."""
    (tmp_path / "predictions_test.csv").write_text(content)
    with pytest.raises(SystemExit) as error:
        paired_runs.main([str(tiny_runs[0]), str(tmp_path)])
    assert str(error.value).startswith(f"{tmp_path / 'predictions_test.csv'}: {said}")


def test_a_run_given_twice_is_refused(tiny_runs):
    with pytest.raises(SystemExit, match="given twice"):
        paired_runs.main([str(tiny_runs[0]), f"{tiny_runs[0]}/"])
