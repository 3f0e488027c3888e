"""The study report's reading of a run's test predictions."""

from __future__ import annotations

import pandas as pd
import pytest

from fintune.errors import FintuneError
from fintune.study.report import Finished, plot_slug
from fintune.study.spec import Cell


def finished(tmp_path, labels, rows) -> Finished:
    tmp_path.mkdir(exist_ok=True)
    frame = pd.DataFrame(rows, columns=["text", "label", "predicted"])
    frame.to_csv(tmp_path / "predictions_test.csv", index=False)
    return Finished(Cell({}, {}, None), tmp_path, {"labels": labels})


def test_labels_that_look_like_booleans_numbers_or_missing_stay_text(tmp_path):
    labels = ["false", "true", "01", "NA"]
    rows = [("a", "true", "true"), ("b", "false", "01"), ("c", "01", "NA"), ("d", "NA", "NA")]
    run = finished(tmp_path, labels, rows)
    y, p = run.block
    assert y.tolist() == [1, 0, 2, 3] and p.tolist() == [1, 2, 3, 3]


def test_a_label_outside_the_runs_labels_is_named(tmp_path):
    run = finished(tmp_path, ["neg", "pos"], [("a", "pos", "neutral")])
    with pytest.raises(FintuneError, match="predicted 'neutral' is not one of the run's labels"):
        _ = run.block


def test_the_test_set_is_named_by_its_texts(tmp_path):
    a = finished(tmp_path / "a", ["n", "p"], [("x", "n", "n"), ("y", "p", "n")])
    b = finished(tmp_path / "b", ["n", "p"], [("x", "n", "p"), ("y", "p", "p")])
    c = finished(tmp_path / "c", ["n", "p"], [("x", "n", "n"), ("z", "p", "n")])
    d = finished(tmp_path / "d", ["n", "p"], [("x", "p", "n"), ("y", "p", "n")])
    assert a.test_set == b.test_set != c.test_set
    assert d.test_set != a.test_set  # same texts, other labels: not one test set


def test_plot_file_names_stay_short_and_distinct():
    used: set[str] = set()
    assert plot_slug("all cells", used) == "all-cells"
    long = "data.files=" + "/very/long/absolute/path/to/the/training/data" * 6
    slug = plot_slug(long, used)
    assert len(slug) <= 60 and slug.startswith("data.files-")
    # two titles that clean to the same name keep their own plots
    assert plot_slug("model=é", used) == "model"
    assert plot_slug("model=ü", used) not in {"model", slug, "all-cells"}
