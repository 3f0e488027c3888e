"""report.md as rendered from a run's metrics, without a run."""

from pathlib import Path

import numpy as np

from fintune.config import validate_config
from fintune.evaluation.metrics import evaluate_predictions
from fintune.report.markdown import render


def _render(
    config, source: str = "data.csv", split: str = "test", prepared: tuple[str, ...] = ()
) -> str:
    labels = ["neg", "pos"]
    y = np.array([0, 1] * 20)
    metrics = {
        "device": "cpu",
        "labels": labels,
        split: evaluate_predictions(y, y[::-1], labels, samples=200),
        "train": {"trainable_params": 10, "total_params": 10, "examples": 80, "epochs": 1.0}
        | {"steps": 5, "runtime_s": 1.0, "samples_per_s": 80.0, "final_train_loss": 0.5}
        | {"last_train_loss": 0.4, "last_train_loss_step": 5},
        "resources": {"cpu_percent_avg": 90.0, "cpu_percent_max": 100.0, "cpu_cores": 2}
        | {"rss_mib_avg": 500.0, "rss_mib_max": 600.0},
    }
    counts = {"n": 40, "labels": {"neg": 20, "pos": 20}}
    fp = {"sha256": "0" * 64, "counts": {name: counts for name in prepared or (split,)}}
    return render(Path("run"), config, metrics, fp, {"source": source})


def test_the_data_source_cannot_open_a_tag_or_end_its_line():
    """The source (a data path, as given) went into report.md as written: a path holding
    "<!--" opened a comment that hid the rest of the report."""
    config = validate_config({"name": "x", "data": {"path": "data/<!-- q3\nfile.csv"}})
    report = _render(config, "data/<!-- q3\nfile.csv")
    assert "Source: data/\\<!-- q3 file.csv. Fingerprint" in report


def test_a_class_weighted_training_loss_is_labelled_so():
    """The training-loss row gave the weighted loss of training.class_weights as if plain."""
    plain = validate_config({"name": "x", "data": {"path": "d.csv"}})
    weighted = validate_config(
        {"name": "x", "data": {"path": "d.csv"}, "training": {"class_weights": True}}
    )
    assert "class-weighted" not in _render(plain)
    assert "| training loss (class-weighted): last logged (step 5)" in _render(weighted)


def test_the_per_class_table_names_its_split_without_a_test_split():
    """With evaluation.test off the per-class table is the validation split's, and its
    heading named no split."""
    config = validate_config({"name": "x", "data": {"path": "d.csv"}})
    assert "### Per class (test)" in _render(config)
    assert "### Per class (validation)" in _render(config, split="validation")


def test_a_test_split_that_was_not_scored_says_so():
    """With evaluation.test off the Data table still listed the test split, as if scored."""
    config = validate_config({"name": "x", "data": {"path": "d.csv"}})
    note = "The test split was held out and not scored (evaluation.test off)."
    assert note not in _render(config)
    assert note not in _render(config, split="validation")  # no test split prepared at all
    report = _render(config, split="validation", prepared=("validation", "test"))
    assert "| test | 40 | 20 | 20 |" in report and note in report


def test_a_sub_second_training_time_is_shown_not_as_0():
    """A run of a few steps on a tiny model trains in milliseconds: the report said
    'training time | 0.0 s', and a run the Trainer timed at 0 gave samples/s 0.0."""
    from fintune.report.markdown import format_seconds

    config = validate_config({"name": "x", "data": {"path": "d.csv"}})
    assert format_seconds(0.042) == "0.042"
    assert format_seconds(0.0) == "< 0.001"
    assert format_seconds(3.14159) == "3.14"
    assert format_seconds(125.4) == "125"
    assert format_seconds(None) == "—"
    metrics_train = {"runtime_s": 0.042, "samples_per_s": 1904.762}
    report = _render_train(config, metrics_train)
    assert "| training time | 0.042 s |" in report
    report = _render_train(config, {"runtime_s": 0.0, "samples_per_s": None})
    assert "| training time | < 0.001 s |" in report
    assert "| training samples/s | — |" in report


def test_a_slow_runs_samples_per_second_is_not_shown_as_0():
    """A large model on a CPU trains at 0.04 samples/s: the study's resource table showed
    0.0 (one decimal), and a run's own report 0.00 below 0.005."""
    from fintune.report.document import Document
    from fintune.study import report
    from fintune.study.report import Finished
    from fintune.study.spec import Cell

    config = validate_config({"name": "x", "data": {"path": "d.csv"}})
    assert "| training samples/s | 0.004 |" in _render_train(
        config, {"runtime_s": 2500.0, "samples_per_s": 0.004}
    )
    metrics = {"device": "cpu", "train": {"runtime_s": 2500.0, "samples_per_s": 0.04}}
    doc = Document("s")
    report._resource_table(doc, {"model=large": [Finished(Cell({}, {}, None), None, metrics)]})
    _, header, body = doc.blocks[0]
    assert dict(zip(header, body[0], strict=True))["samples/s"] == "0.04"


def _render_train(config, train: dict) -> str:
    labels = ["neg", "pos"]
    y = np.array([0, 1] * 20)
    metrics = {
        "device": "cpu",
        "labels": labels,
        "test": evaluate_predictions(y, y[::-1], labels, samples=200),
        "train": {"trainable_params": 10, "total_params": 10, "examples": 80, "epochs": 1.0}
        | {"steps": 5, "final_train_loss": 0.5, **train},
        "resources": {"cpu_percent_avg": 90.0, "cpu_percent_max": 100.0, "cpu_cores": 2}
        | {"rss_mib_avg": 500.0, "rss_mib_max": 600.0},
    }
    fp = {"sha256": "0" * 64, "counts": {"test": {"n": 40, "labels": {"neg": 20, "pos": 20}}}}
    return render(Path("run"), config, metrics, fp, {"source": "d.csv"})


def test_an_underscore_at_a_word_edge_in_a_run_name_is_not_emphasis():
    config = validate_config({"name": "q3._draft_", "data": {"path": "d.csv"}})
    assert _render(config).startswith("# q3.\\_draft\\_\n")
