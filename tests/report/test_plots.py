"""The confusion matrix PNG can be read at any label count."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from fintune.report.plots import plot_confusion


def _drawn(monkeypatch, k: int, tmp_path) -> list[str]:
    """Every text the saved figure holds: titles, axis labels, ticks, cell counts."""
    texts = []

    def record(fig, *args, **kwargs):
        texts.extend(t.get_text() for t in fig.findobj(plt.Text) if t.get_text())

    monkeypatch.setattr(plt.Figure, "savefig", record)
    cm = np.diag(np.arange(1, k + 1)) + 1
    plot_confusion(cm.tolist(), [f"l{i}" for i in range(k)], "t", tmp_path / "cm.png")
    return texts


def test_a_matrix_too_large_for_cell_counts_has_a_colour_scale(monkeypatch, tmp_path):
    """77 labels (banking77): no counts in the cells, and no scale said what a colour meant."""
    assert "3" in _drawn(monkeypatch, 3, tmp_path)  # a small matrix writes its counts
    large = _drawn(monkeypatch, 77, tmp_path)
    assert "examples" in large  # the colour bar's label


def test_a_plot_with_nothing_logged_says_so(monkeypatch, tmp_path):
    """A run directory without its history.jsonl (deleted, or copied without it) gave empty
    axes, a warning about the legend on the console, and nothing said why."""
    import warnings

    from fintune.report.plots import plot_learning_rate, plot_loss

    texts = []
    monkeypatch.setattr(
        plt.Figure,
        "savefig",
        lambda fig, *a, **k: texts.extend(t.get_text() for t in fig.findobj(plt.Text)),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "No artists with labels found")  # an empty legend
        plot_loss([], tmp_path / "loss.png")
        plot_learning_rate([{"step": 6, "eval_loss": 0.7}], tmp_path / "lr.png")
    notes = [t for t in texts if "history.jsonl is missing or holds none" in t]
    assert len(notes) == 2


def test_a_class_weighted_training_loss_is_labelled_so(monkeypatch, tmp_path):
    """With training.class_weights the training curve is the weighted cross-entropy and the
    validation curve the plain one; both were labelled alike, so their gap read as overfitting
    or its absence."""
    from fintune.report.plots import plot_loss

    texts = []
    monkeypatch.setattr(
        plt.Figure,
        "savefig",
        lambda fig, *a, **k: texts.extend(t.get_text() for t in fig.findobj(plt.Text)),
    )
    history = [{"step": 1, "loss": 1.2}, {"step": 2, "eval_loss": 0.9}]
    plot_loss(history, tmp_path / "loss.png", weighted=True)
    assert "train (class-weighted)" in texts and "validation" in texts


def _crowded(fig) -> list[str]:
    """Which tick labels of a confusion matrix run into their neighbours: the x labels (as
    drawn, turned or not) and the y labels, measured on the figure as saved."""
    import math

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    ax = fig.axes[0]
    renderer = FigureCanvasAgg(fig).get_renderer()
    origin, one = ax.transData.transform([(0, 0), (1, 1)])
    cell_x, cell_y = abs(one - origin)
    ticks = ax.get_xticklabels()
    angle = math.radians(ticks[0].get_rotation())
    for tick in ticks:  # the extent of each label along and across its own line
        tick.set_rotation(0)
    width = max(t.get_window_extent(renderer).width for t in ticks)
    height = max(t.get_window_extent(renderer).height for t in ticks)
    crowded = []
    if (cell_x * math.sin(angle) if angle else cell_x) < (height if angle else width):
        crowded.append("x")
    if cell_y < max(t.get_window_extent(renderer).height for t in ax.get_yticklabels()):
        crowded.append("y")
    return crowded


def test_long_labels_and_many_labels_do_not_run_into_each_other(monkeypatch, tmp_path):
    """Three labels of 27 characters were written level, each twice as wide as its column,
    into one another; 150 labels at 10 pt overlapped on both axes."""
    figures = []
    monkeypatch.setattr(plt.Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    for k in (2, 3, 77, 150):
        labels = [f"sector_{i}_financial_services" for i in range(k)]
        plot_confusion((np.eye(k, dtype=int) + 1).tolist(), labels, "t", tmp_path / "cm.png")
        assert _crowded(figures[-1]) == [], k
    plot_confusion([[5, 1], [2, 7]], ["negative", "positive"], "t", tmp_path / "cm.png")
    assert figures[-1].axes[0].get_xticklabels()[0].get_rotation() == 0  # short: level


def test_a_one_step_curve_has_no_fractional_steps_on_its_axis(monkeypatch, tmp_path):
    """A run of one optimiser step drew its loss and learning rate over steps 0.96 to 1.04."""
    from fintune.report.plots import plot_learning_rate, plot_loss

    figures = []
    monkeypatch.setattr(plt.Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    history = [{"step": 1, "loss": 1.1, "learning_rate": 1e-3}, {"step": 1, "eval_loss": 1.0}]
    plot_loss(history, tmp_path / "loss.png")
    plot_learning_rate(history, tmp_path / "lr.png")
    for figure in figures:
        ax = figure.axes[0]
        low, high = ax.get_xlim()
        steps = [t for t in ax.get_xticks() if low <= t <= high]
        assert steps and all(float(t).is_integer() for t in steps), steps


def test_a_very_long_label_leaves_the_matrix_its_room(monkeypatch, tmp_path):
    """A 300-character label made a tick text so wide that the matrix was a sliver of the
    saved image; two long labels sharing their start stay apart once shortened."""
    from fintune.report.plots import text_width, tick_labels

    figures = []
    monkeypatch.setattr(plt.Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    labels = ["a" * 150 + " first", "a" * 150 + " second", "short"]
    plot_confusion((np.eye(3, dtype=int) + 1).tolist(), labels, "t", tmp_path / "cm.png")
    fig = figures[-1]
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert max(map(len, ticks)) <= 40 and len(set(ticks)) == 3
    assert ticks[0].endswith(" first") and ticks[2] == "short"
    renderer = FigureCanvasAgg(fig).get_renderer()  # a closed figure keeps no canvas
    matrix = fig.axes[0].get_window_extent(renderer)
    assert matrix.width > 0.3 * fig.get_tightbbox(renderer).width * fig.dpi  # as saved
    assert text_width(tick_labels(["短" * 40])[0]) <= 40  # a wide character counts as two
    same_ends = tick_labels(["x" * 50 + "1" + "x" * 50, "x" * 50 + "2" + "x" * 50])
    assert same_ends[0].startswith("0: ") and same_ends[1].startswith("1: ")


def test_room_for_labels_is_measured_as_drawn_not_counted_in_characters(monkeypatch, tmp_path):
    """Room sized by character count left 40 W's (the widest letters) 22% of the width."""
    figures = []
    monkeypatch.setattr(plt.Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    labels = ["W" * 40, "X" * 40, "Y" * 40]
    plot_confusion((np.eye(3, dtype=int) + 1).tolist(), labels, "t", tmp_path / "cm.png")
    fig = figures[-1]
    renderer = FigureCanvasAgg(fig).get_renderer()
    matrix = fig.axes[0].get_window_extent(renderer)
    assert matrix.width > 0.35 * fig.get_tightbbox(renderer).width * fig.dpi


def test_labels_the_font_cannot_draw_are_shown_as_class_ids(monkeypatch, tmp_path):
    """Chinese labels (利空, 中性, 利好) were drawn as the same empty boxes in DejaVu Sans,
    so no row or column could be told apart."""
    from fintune.report.plots import tick_labels, undrawable_note

    labels = ["利空", "中性", "利好"]
    assert tick_labels(labels) == ["0", "1", "2"]
    assert undrawable_note(labels, "The plot") == (
        "The plot shows the labels as their class ids (no font here draws them): "
        "0 利空, 1 中性, 2 利好."
    )
    assert tick_labels(["baisse €", "hausse é"]) == ["baisse €", "hausse é"]
    assert undrawable_note(["baisse €", "hausse é"], "The plot") is None


def test_a_matrix_of_equal_counts_draws_them_on_a_dark_cell(monkeypatch, tmp_path):
    """Colours ran from the matrix's lowest count to its highest: [[5, 5], [5, 5]] (or a
    one-label [[7]]) was drawn palest, in white text, so no count could be read."""
    figures = []
    monkeypatch.setattr(plt.Figure, "savefig", lambda fig, *a, **k: figures.append(fig))
    for matrix, labels in (([[5, 5], [5, 5]], ["negative", "positive"]), ([[7]], ["only"])):
        plot_confusion(matrix, labels, "t", tmp_path / "cm.png")
        ax = figures[-1].axes[0]
        (image,) = ax.get_images()
        red, green, blue, _ = image.to_rgba(matrix[0][0])
        assert 0.3 * red + 0.6 * green + 0.1 * blue < 0.5
        assert {t.get_color() for t in ax.texts} == {"white"}
