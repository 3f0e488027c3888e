"""The study report's reading of a run's test predictions."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from fintune.errors import FintuneError
from fintune.study.report import Finished, plot_slug
from fintune.study.spec import Cell


@pytest.fixture(autouse=True)
def _close_figures():
    """Tests that catch the figures instead of saving them close them here."""
    yield
    plt.close("all")


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


def test_a_cleaned_run_shares_its_test_set_with_an_uncleaned_one(tmp_path):
    """A study over data.cleaning compares runs on the same examples: the test set is named
    by the data's own text, not by what cleaning made of it."""
    plain = finished(tmp_path / "plain", ["n", "p"], [("X!", "n", "n"), ("Y!", "p", "n")])
    cleaned = tmp_path / "cleaned"
    cleaned.mkdir()
    pd.DataFrame(
        {"text": ["X!", "Y!"], "label": ["n", "p"], "predicted": ["p", "p"]}
        | {"confidence": [0.9, 0.8], "cleaned_text": ["x", "y"]}
    ).to_csv(cleaned / "predictions_test.csv", index=False)
    assert Finished(Cell({}, {}, None), cleaned, {"labels": ["n", "p"]}).test_set == plain.test_set


def test_plot_file_names_stay_short_and_distinct():
    used: set[str] = set()
    assert plot_slug("all cells", used) == "all-cells"
    long = "data.files=" + "/very/long/absolute/path/to/the/training/data" * 6
    slug = plot_slug(long, used)
    assert len(slug) <= 60 and slug.startswith("data.files-")
    # two titles that clean to the same name keep their own plots
    assert plot_slug("model=é", used) == "model"
    assert plot_slug("model=ü", used) not in {"model", slug, "all-cells"}


def test_the_metric_bars_start_at_zero(tmp_path, monkeypatch):
    """The axis started just below the lowest interval, so a bar's height was not its value:
    a macro F1 of 0.25 next to an accuracy of 0.59 was drawn a fifth as tall."""
    from fintune.report.document import Document
    from fintune.study import report

    metrics = {
        "labels": ["n", "p"],
        "test": {
            "accuracy": 0.59,
            "f1_macro": 0.25,
            "f1_weighted": 0.44,
            "confusion_matrix": [[5, 0], [5, 0]],
        },
    }
    (tmp_path / "history.jsonl").write_text('{"step": 1, "loss": 1.0, "learning_rate": 0.1}\n')
    run = Finished(Cell({}, {}, None), tmp_path, metrics)
    intervals = {"accuracy": [0.49, 0.69], "f1_macro": [0.22, 0.27], "f1_weighted": [0.32, 0.56]}
    limits = []
    monkeypatch.setattr(
        report, "_save", lambda fig, path, doc, alt: limits.append(fig.axes[0].get_ylim())
    )
    rows, ci = {"method=full": [run]}, {"method=full": intervals}
    report._plots(Document("s"), tmp_path, "all", rows, ci)
    assert limits[0][0] == 0


def test_stale_plots_are_removed_only_when_the_report_wrote_them(tmp_path):
    from fintune.report.document import Document
    from fintune.study.report import drop_stale_plots

    plots = tmp_path / "plots"
    plots.mkdir()
    for name in ("param_importances.png", "optimization_history.png", "mine.png"):
        (plots / name).write_bytes(b"png")
    (tmp_path / "outside.png").write_bytes(b"png")
    doc = Document("sweep")
    doc.image(plots / "optimization_history.png", "history")
    sweep_plots = {"optimization_history.png", "param_importances.png"}
    drop_stale_plots(doc, plots, lambda name: name in sweep_plots)  # before the list: by name
    assert sorted(p.name for p in plots.glob("*.png")) == ["mine.png", "optimization_history.png"]
    (plots / ".written.json").write_text('["../outside.png", "mine.png"]')  # edited by hand
    drop_stale_plots(doc, plots, lambda name: True)
    assert (tmp_path / "outside.png").is_file() and not (plots / "mine.png").exists()


@pytest.mark.parametrize("damaged", ["3", '{"a": 1}', '[1, null, "..", "."]', "not json"])
def test_a_damaged_list_of_written_plots_falls_back_to_their_names(tmp_path, damaged):
    """A hand-edited plots/.written.json stopped the report with a traceback after every
    cell had run."""
    from fintune.report.document import Document
    from fintune.study.report import drop_stale_plots

    plots = tmp_path / "plots"
    plots.mkdir()
    for name in ("param_importances.png", "mine.png"):
        (plots / name).write_bytes(b"png")
    (plots / ".written.json").write_text(damaged)
    drop_stale_plots(Document("sweep"), plots, lambda name: name == "param_importances.png")
    assert [p.name for p in plots.glob("*.png")] == ["mine.png"]
    assert json.loads((plots / ".written.json").read_text()) == []


TWO_LABELS = {  # a finished run's metrics.json, as the plots read it
    "labels": ["n", "p"],
    "test": {"accuracy": 0.6, "f1_macro": 0.5, "f1_weighted": 0.55}
    | {"confusion_matrix": [[3, 2], [2, 3]]},
}


def _plotted(monkeypatch, folder, rows: dict) -> dict:
    """The figures a study group's plots draw for `rows` (every CI [0.4, 0.7]), by file name."""
    from fintune.report.document import Document
    from fintune.study import report

    ci = {name: {m: [0.4, 0.7] for m in ("accuracy", "f1_macro", "f1_weighted")} for name in rows}
    figures = {}
    monkeypatch.setattr(
        report, "_save", lambda fig, path, doc, alt: figures.setdefault(path.name, fig)
    )
    report._plots(Document("s"), folder, "all", rows, ci)
    return figures


def test_more_than_ten_rows_keep_their_own_look_in_every_plot(tmp_path, monkeypatch):
    """Colours came from a ten-colour map: the 11th row was drawn as the 1st, in the bars
    and in the loss and learning-rate curves, so the legend could not tell them apart."""
    from matplotlib.colors import to_hex

    metrics = TWO_LABELS
    (tmp_path / "history.jsonl").write_text(
        '{"step": 1, "loss": 1.0, "learning_rate": 0.1}\n'
        '{"step": 2, "loss": 0.5, "learning_rate": 0.05, "eval_loss": 0.7}\n'
    )
    rows = {f"method=m{i}": [Finished(Cell({}, {}, None), tmp_path, metrics)] for i in range(12)}
    figures = _plotted(monkeypatch, tmp_path, rows)
    bars = [c for c in figures["all-metrics.png"].axes[0].containers if hasattr(c, "patches")]
    looks = {(to_hex(bar.patches[0].get_facecolor()), bar.patches[0].get_hatch()) for bar in bars}
    assert len(bars) == len(looks) == 12
    for name in ("all-loss.png", "all-lr.png"):
        lines = figures[name].axes[0].get_legend().get_lines()
        assert len({(to_hex(line.get_color()), line.get_marker()) for line in lines}) == 12


def test_a_confusion_grid_too_large_for_counts_has_a_colour_scale(tmp_path, monkeypatch):
    """Past ten labels the grid writes no counts in its cells, and it had no colour bar
    either: a shade meant no number at all, and each matrix had its own shades."""

    labels = [f"intent {i}" for i in range(12)]
    metrics = {
        "labels": labels,
        "test": {"accuracy": 0.6, "f1_macro": 0.5, "f1_weighted": 0.55}
        | {"confusion_matrix": (3 * np.eye(12, dtype=int) + 1).tolist()},
    }
    (tmp_path / "history.jsonl").write_text('{"step": 6, "eval_loss": 0.7}\n')
    rows = {f"method=m{i}": [Finished(Cell({}, {}, None), tmp_path, metrics)] for i in range(2)}
    figures = _plotted(monkeypatch, tmp_path, rows)
    # the rows logged a validation loss only: the learning-rate plot says why it is empty
    drawn = [t.get_text() for t in figures["all-lr.png"].findobj(plt.Text)]
    assert any("no learning rate logged" in text for text in drawn)
    assert figures["all-loss.png"].axes[0].get_legend() is not None  # validation only
    axes = figures["all-confusion.png"].axes
    scales = [ax for ax in axes if ax.get_label() == "<colorbar>"]
    assert len(scales) == 2 and all("examples" in ax.get_ylabel() for ax in scales)


def test_each_confusion_matrix_names_its_own_rows_labels(tmp_path, monkeypatch):
    """A study over data.path can group rows with other labels: every matrix was drawn with
    the first row's, so the TFNS matrix's 'bullish' column read 'neutral'."""

    def row(labels, cm):
        test = {"accuracy": 0.5, "f1_macro": 0.5, "f1_weighted": 0.5, "confusion_matrix": cm}
        return [Finished(Cell({}, {}, None), tmp_path, {"labels": labels, "test": test})]

    (tmp_path / "history.jsonl").write_text('{"step": 1, "loss": 1.0, "learning_rate": 0.1}\n')
    rows = {
        "data.path=fpb.csv": row(
            ["negative", "neutral", "positive"], np.eye(3, dtype=int).tolist()
        ),
        "data.path=tfns.csv": row(["bearish", "bullish"], [[4, 0], [1, 4]]),
    }
    axes = [ax for ax in _plotted(monkeypatch, tmp_path, rows)["all-confusion.png"].axes]
    shown = {ax.get_title(): [t.get_text() for t in ax.get_yticklabels()] for ax in axes}
    assert shown["data.path=fpb.csv (n=3)"] == ["negative", "neutral", "positive"]
    assert shown["data.path=tfns.csv (n=9)"] == ["bearish", "bullish"]


def test_the_resource_table_says_where_each_row_ran():
    """A study resumed on another machine reuses its finished cells: a row trained on a
    GPU stood beside one trained on the CPU, 30 times slower, with nothing to say so."""
    from fintune.report.document import Document
    from fintune.study import report

    def run(device: str, seconds: float) -> Finished:
        metrics = {
            "device": device,
            "train": {"runtime_s": seconds, "samples_per_s": 100 / seconds},
            "resources": {"cpu_percent_avg": 100.0},
        }
        return Finished(Cell({}, {}, None), None, metrics)

    rows = {"method=full": [run("cuda", 10.0)], "method=lora": [run("cpu", 300.0), run("cpu", 290)]}
    doc = Document("s")
    report._resource_table(doc, rows)
    (_, header, body), note = doc.blocks[0], doc.blocks[1][1]
    assert header[1] == "device" and [row[1] for row in body] == ["cuda", "cpu"]
    assert "different devices" in note and "not comparable" in note
    one = Document("s")
    report._resource_table(one, {"method=full": [run("cpu", 1.0)], "method=lora": [run("cpu", 2)]})
    assert len(one.blocks) == 1


def test_a_difference_over_fewer_seeds_than_the_baseline_row_says_so(tmp_path):
    """The Δ pairs each seed with the baseline's run of that seed; where the baseline row had
    a seed the row lacks (its run failed), Δ covered fewer seeds than the baseline's mean
    beside it, and only the opposite case was noted."""
    from fintune.study import report
    from fintune.study.spec import StudySpec

    spec = StudySpec(name="s", base={}, baseline={"method": "full"}, bootstrap_samples=200)
    done = {}
    for method, seeds in (("full", "123"), ("lora", "12")):
        for seed in seeds:
            rows = [(f"t{i}", "np"[i % 2], "np"[i % 2] if i > int(seed) else "n") for i in range(8)]
            run = finished(tmp_path / f"{method}{seed}", ["n", "p"], rows)
            run.cell = Cell({"method": method, "seed": seed}, {}, None)
            done[run.cell.id] = run
    lora = [run for run in done.values() if run.cell.coords["method"] == "lora"]
    assert "(2 of the baseline's 3 seeds paired)" in report._versus_baseline(lora, spec, done)[0]
    del done["method=full,seed=2"]
    delta = report._versus_baseline(lora, spec, done)[0]
    assert "(1 seeds paired, of 2 here and 2 in the baseline)" in delta
    del done["method=full,seed=3"]
    assert "(1 of 2 seeds paired)" in report._versus_baseline(lora, spec, done)[0]
    del done["method=lora,seed=2"]
    assert "paired)" not in report._versus_baseline(lora[:1], spec, done)[0]


def test_a_better_rows_interval_does_not_show_a_bound_of_0(tmp_path):
    """On 2,500 test examples a candidate that fixes 15 of the baseline's errors and makes 5
    new ones is better (p = 0.041, interval [0.0004, 0.0072]): the report showed
    '+0.0040 [+0.000, +0.007]' beside **better**, an interval that seems to touch 0."""
    from fintune.report.document import bold
    from fintune.study import report
    from fintune.study.spec import StudySpec

    spec = StudySpec(name="s", base={}, baseline={"method": "full"})
    done = {}
    for method, wrong in (("full", range(15)), ("lora", range(15, 20))):
        rows = [(f"t{i}", "n", "p" if i in wrong else "n") for i in range(2500)]
        run = finished(tmp_path / method, ["n", "p"], rows)
        run.cell = Cell({"method": method}, {}, None)
        done[run.cell.id] = run
    delta, verdict, _ = report._versus_baseline([done["method=lora"]], spec, done)
    assert verdict == bold("better")
    assert delta.startswith("+0.0040 [+0.0004, +0.0073]"), delta  # 0.00720..., rounded up


def test_a_legend_of_many_rows_is_not_cut_off(tmp_path, monkeypatch):
    """The figures were 3.8 inches tall whatever the rows: with 25 rows the legend beside
    each plot ran past the bottom edge, and rows 20 to 25 were missing from it."""

    metrics = TWO_LABELS
    (tmp_path / "history.jsonl").write_text('{"step": 1, "loss": 1.0, "learning_rate": 0.1}\n')
    rows = {f"lr={i}e-5": [Finished(Cell({}, {}, None), tmp_path, metrics)] for i in range(25)}
    figures = _plotted(monkeypatch, tmp_path, rows)
    for name in ("all-metrics.png", "all-loss.png", "all-lr.png"):
        fig = figures[name]
        fig.tight_layout()
        fig.canvas.draw()
        legend = fig.axes[0].get_legend().get_window_extent()
        assert legend.y0 >= 0 and legend.y1 <= fig.bbox.y1, name


def test_a_dollar_in_a_rows_name_is_drawn_as_written(tmp_path, monkeypatch):
    """Matplotlib read the text between two "$" of a row's name as TeX: "cap_$1M_to_$5M"
    failed the report after every cell had trained, and "$5 to $10" lost its dollars."""
    metrics = TWO_LABELS
    (tmp_path / "history.jsonl").write_text('{"step": 1, "loss": 1.0, "learning_rate": 0.1}\n')
    names = ["budget=cap_$1M_to_$5M", "budget=cost $5 to $10"]
    rows = {name: [Finished(Cell({}, {}, None), tmp_path, metrics)] for name in names}
    figures = _plotted(monkeypatch, tmp_path, rows)
    for fig in figures.values():
        fig.canvas.draw()
        texts = [t for ax in fig.axes for t in (ax.title, *ax.texts)]
        texts += [t for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        shown = [t for t in texts if "$" in t.get_text()]
        assert shown and not any(t.get_parse_math() for t in shown)


def test_gpu_memory_columns_only_where_a_run_used_cuda():
    """A study on the CPU had two columns of dashes, GPU MiB avg and max; README and a
    run's report give GPU memory on CUDA only."""
    from fintune.report.document import Document
    from fintune.study import report

    def run(device: str, **gpu) -> Finished:
        metrics = {"device": device, "train": {}, "resources": {"rss_mib_max": 500.0, **gpu}}
        return Finished(Cell({}, {}, None), None, metrics)

    cpu = Document("s")
    report._resource_table(cpu, {"method=full": [run("cpu")], "method=lora": [run("cpu")]})
    assert not any("GPU" in column for column in cpu.blocks[0][1])
    cuda = Document("s")
    gpu = {"gpu_mem_mib_avg": 900.0, "gpu_mem_mib_max": 1000.0}
    report._resource_table(cuda, {"method=full": [run("cuda", **gpu)], "method=lora": [run("cpu")]})
    header, body = cuda.blocks[0][1:]
    assert header[-2:] == ["GPU MiB avg", "GPU MiB max"] and body[0][-2:] == ["900", "1000"]


def test_the_cpu_columns_say_what_100_percent_is():
    """ "CPU % max 190" read as a broken figure: psutil counts 100 per core, which a run's
    report says and the study's table did not."""
    from fintune.report.document import Document
    from fintune.study import report

    run = Finished(Cell({}, {}, None), None, {"device": "cpu", "train": {}, "resources": {}})
    doc = Document("s")
    report._resource_table(doc, {"method=full": [run]})
    header = doc.blocks[0][1]
    assert "CPU % avg (100 = one core)" in header and "CPU % max (100 = one core)" in header


def test_a_class_weighted_rows_training_loss_is_labelled_so(tmp_path, monkeypatch):
    """Beside a row without training.class_weights, a weighted row's training curve (the
    weighted cross-entropy) was drawn as if the same loss."""
    from fintune.config import validate_config

    metrics = TWO_LABELS
    (tmp_path / "history.jsonl").write_text('{"step": 1, "loss": 1.0, "learning_rate": 0.1}\n')
    rows = {}
    for weights in (False, True):
        raw = {"name": "x", "data": {"path": "d.csv"}, "training": {"class_weights": weights}}
        cell = Cell({"class_weights": str(weights)}, {}, validate_config(raw))
        rows[f"class_weights={weights}"] = [Finished(cell, tmp_path, metrics)]
    figures = _plotted(monkeypatch, tmp_path, rows)
    shown = [t.get_text() for t in figures["all-loss.png"].axes[0].get_legend().get_texts()]
    assert shown == ["class_weights=False", "class_weights=True (training loss class-weighted)"]
    shown = [t.get_text() for t in figures["all-lr.png"].axes[0].get_legend().get_texts()]
    assert shown == ["class_weights=False", "class_weights=True"]


def test_test_sizes_that_differ_between_seeds_are_listed_in_numeric_order(monkeypatch):
    """Seeds with their own test splits can differ in size: "n test" sorted them as text,
    "100/1000/99"."""
    from fintune.config.schema import METRICS
    from fintune.report.document import Document
    from fintune.study import report
    from fintune.study.spec import StudySpec

    def run(seed: int, n: int) -> Finished:
        metrics = {"seed": seed, "test": {"n": n, **dict.fromkeys(METRICS, 0.5)}}
        return Finished(Cell({"seed": str(seed)}, {}, None), None, metrics)

    monkeypatch.setattr(report, "_versus_baseline", lambda *a: ["baseline", "", ""])
    spec = StudySpec(name="s", base={}, baseline={"method": "full"})
    rows = {"method=full": [run(1, 100), run(2, 99), run(3, 1000), run(4, 99)]}
    intervals = {"method=full": {m: [0.4, 0.6] for m in METRICS}}
    doc = Document("s")
    report._metrics_table(doc, spec, rows, intervals, {})
    _, header, body = doc.blocks[0]
    assert body[0][header.index("n test")] == "99/100/1000"


def test_a_seed_scored_all_right_is_noted_as_narrowing_its_rows_mean(monkeypatch):
    """A row of seeds shows the interval of their mean, which has width; the note told of
    '[1.000, 1.000]' and 'F1 intervals shown beside them as narrow', which no cell showed."""
    from fintune.config.schema import METRICS
    from fintune.report.document import Document
    from fintune.study import report
    from fintune.study.spec import StudySpec

    def run(seed: int, accuracy: float) -> Finished:
        metrics = {"seed": seed, "test": {"n": 60, **dict.fromkeys(METRICS, accuracy)}}
        return Finished(Cell({"seed": str(seed)}, {}, None), None, metrics)

    monkeypatch.setattr(report, "_versus_baseline", lambda *a: ["baseline", "", ""])
    spec = StudySpec(name="s", base={}, baseline={"method": "full"})
    rows = {"method=lora": [run(1, 1.0), run(2, 0.9)], "method=full": [run(1, 1.0)]}
    intervals = {name: {m: [0.85, 0.96] for m in METRICS} for name in rows}
    doc = Document("s")
    report._metrics_table(doc, spec, rows, intervals, {})
    notes = [block[1] for block in doc.blocks if block[0] == "p"]
    (single,) = [n for n in notes if "Interval at the edge" in n]
    (seeds,) = [n for n in notes if "Seed at the edge" in n]
    assert "method=full test: all of 60 right" in single and "seed" not in single
    assert "method=lora test (seed 1): all of 60 right, accuracy [0.940, 1.000]" in seeds
    assert "[1.000, 1.000]" not in seeds and "seed 2" not in seeds


def test_the_resource_table_shows_a_sub_second_training_time():
    """Cells of a few steps on a tiny model trained in 0.04 s: 'train time s' showed 0,
    and a rate the Trainer could not time (None) crashed nothing but must show a dash."""
    from fintune.report.document import Document
    from fintune.study import report

    metrics = {
        "device": "cpu",
        "train": {"runtime_s": 0.042, "samples_per_s": None},
        "resources": {"cpu_percent_avg": 100.0},
    }
    doc = Document("s")
    report._resource_table(doc, {"method=full": [Finished(Cell({}, {}, None), None, metrics)]})
    (_, header, body) = doc.blocks[0]
    row = dict(zip(header, body[0], strict=True))
    assert row["train time s"] == "0.042"
    assert row["samples/s"] == "—"


def test_the_confusion_grid_is_capped_in_size_as_a_runs_own_matrix_is(tmp_path, monkeypatch):
    """Each matrix grew a quarter inch per label without a limit: 300 labels in 8 cells drew
    a 21,000-pixel-square PNG (441 million pixels) into the self-contained report."""
    from fintune.report.document import Document
    from fintune.study import report

    k = 300
    labels = [f"intent_{i}" for i in range(k)]
    matrix = (np.eye(k, dtype=int) * 3).tolist()
    metrics = {"labels": labels, "test": {"accuracy": 1.0, "confusion_matrix": matrix}}
    metrics["test"] |= {"f1_macro": 1.0, "f1_weighted": 1.0}
    (tmp_path / "history.jsonl").write_text('{"step": 1, "loss": 1.0, "learning_rate": 0.1}\n')
    sizes = {}
    monkeypatch.setattr(
        report, "_save", lambda fig, path, doc, alt: sizes.setdefault(alt, fig.get_size_inches())
    )
    rows = {f"method={m}": [Finished(Cell({}, {}, None), tmp_path, metrics)] for m in "ab"}
    ci = {name: dict.fromkeys(("accuracy", "f1_macro", "f1_weighted"), [0.9, 1.0]) for name in rows}
    report._plots(Document("s"), tmp_path, "all", rows, ci)
    width, height = sizes["confusion matrices"]
    assert width < 2 * 16 and height < 16, (width, height)  # two matrices side by side


def test_a_confusion_grid_of_equal_counts_draws_them_on_a_dark_cell(tmp_path, monkeypatch):
    """Colours ran from the matrix's own lowest count to its highest: equal counts were
    drawn palest, in white text, so no count could be read."""
    metrics = {
        "labels": ["n", "p"],
        "test": {"accuracy": 0.5, "f1_macro": 0.5, "f1_weighted": 0.5}
        | {"confusion_matrix": [[5, 5], [5, 5]]},
    }
    (tmp_path / "history.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    rows = {"method=full": [Finished(Cell({}, {}, None), tmp_path, metrics)]}
    ax = _plotted(monkeypatch, tmp_path, rows)["all-confusion.png"].axes[0]
    (image,) = ax.get_images()
    red, green, blue, _ = image.to_rgba(5)
    assert 0.3 * red + 0.6 * green + 0.1 * blue < 0.5  # dark, under its white "5"
    assert {t.get_color() for t in ax.texts} == {"white"}


def test_a_row_without_a_history_file_is_named_not_left_out_of_the_curves(tmp_path, monkeypatch):
    """A deleted history.jsonl read as no records: the row vanished from the loss and
    learning-rate plots, with no legend entry and no note."""
    from fintune.report.document import Document
    from fintune.study import report

    metrics = TWO_LABELS
    full, lora = tmp_path / "full", tmp_path / "lora"
    for folder in (full, lora):
        folder.mkdir()
    (full / "history.jsonl").write_text('{"step": 1, "loss": 1.0, "learning_rate": 0.1}\n')
    rows = {
        "method=full": [Finished(Cell({}, {}, None), full, metrics)],
        "method=lora": [Finished(Cell({}, {}, None), lora, metrics)],
    }
    monkeypatch.setattr(report, "_save", lambda fig, path, doc, alt: None)
    doc = Document("s")
    ci = {name: {m: [0.4, 0.7] for m in ("accuracy", "f1_macro", "f1_weighted")} for name in rows}
    report._plots(doc, tmp_path, "all", rows, ci)
    said = " ".join(doc.markdown(tmp_path).split())
    assert "method=lora: no loss or learning-rate curve, its history.jsonl is missing" in said


def test_a_study_curve_of_few_steps_has_whole_steps_on_its_axis(tmp_path, monkeypatch):
    """Steps 1 and 3 were drawn over ticks 0.75, 1.00, 1.25 ...: no step 1.25 exists."""
    metrics = TWO_LABELS
    (tmp_path / "history.jsonl").write_text(
        '{"step": 1, "loss": 1.0, "learning_rate": 0.1}\n'
        '{"step": 3, "loss": 0.5, "learning_rate": 0.05}\n'
    )
    rows = {"method=full": [Finished(Cell({}, {}, None), tmp_path, metrics)]}
    figures = _plotted(monkeypatch, tmp_path, rows)
    for name in ("all-loss.png", "all-lr.png"):
        ax = figures[name].axes[0]
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), (name, ticks)
