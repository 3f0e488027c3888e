"""The run's three plots as PNG: loss curves, learning-rate schedule, confusion matrix."""

from __future__ import annotations

import math
import unicodedata
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import RendererAgg  # noqa: E402
from matplotlib.font_manager import FontProperties, findfont, get_font  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def lone(points: list) -> str | None:
    """A marker for a series of one point, which a line alone would not draw."""
    return "o" if len(points) == 1 else None


def nothing_logged(ax, what: str) -> None:
    """Say why a plot is empty, instead of leaving bare axes."""
    ax.text(
        0.5,
        0.95,
        f"no {what} logged: the run's history.jsonl is missing or holds none",
        ha="center",
        va="top",
        transform=ax.transAxes,
        color="#555555",
    )


def plot_loss(history: list[dict], path: Path, weighted: bool = False) -> None:
    """`weighted`: the training loss is training.class_weights' weighted cross-entropy
    (the validation loss never is)."""
    train = [(r["step"], r["loss"]) for r in history if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in history if "eval_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if train:
        name = "train (class-weighted)" if weighted else "train"
        ax.plot(*zip(*train, strict=True), label=name, color="#1f77b4", marker=lone(train))
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="validation", color="#d62728")
    ax.set_xlabel("optimiser step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # 1 step: no 0.96
    ax.set_ylabel("cross-entropy loss")
    ax.set_title("Loss")
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend()
    if not train:
        nothing_logged(ax, "training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_learning_rate(history: list[dict], path: Path) -> None:
    points = [(r["step"], r["learning_rate"]) for r in history if "learning_rate" in r]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if points:
        ax.plot(*zip(*points, strict=True), color="#2ca02c", marker=lone(points))
    else:
        nothing_logged(ax, "learning rate")
    ax.set_xlabel("optimiser step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # 1 step: no 0.96
    ax.set_ylabel("learning rate")
    ax.set_title("Learning-rate schedule")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tick_labels(labels: list[str], width: int = 40) -> list[str]:
    """Labels short enough for an axis: a 300-character label left the matrix a sliver.
    The middle goes, so labels that share a long start stay apart; where two still read
    the same, each is numbered. Width counts a wide (CJK) character as two. Labels the
    font cannot draw are their class ids (the reports list them)."""
    if not drawable(labels):
        return [str(i) for i in range(len(labels))]
    shown = [t if text_width(t) <= width else _cut_middle(t, width) for t in labels]
    if len(set(shown)) < len(set(labels)):
        shown = [f"{i}: {t}" for i, t in enumerate(shown)]
    return shown


def drawable(labels: list[str]) -> bool:
    """Whether matplotlib's font has every character of the labels: its default, DejaVu
    Sans, has no CJK ones, so 利空 and 利好 were drawn as the same empty boxes."""
    charmap = get_font(findfont(FontProperties())).get_charmap()
    return all(ord(c) in charmap for t in labels for c in t if c.isprintable() and c != " ")


def undrawable_note(labels: list[str], what: str) -> str | None:
    """The sentence a report adds where `what` shows its labels as class ids."""
    if drawable(labels):
        return None
    ids = ", ".join(f"{i} {label}" for i, label in enumerate(labels))
    return f"{what} shows the labels as their class ids (no font here draws them): {ids}."


def text_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cut_middle(text: str, width: int) -> str:
    head, tail, room = "", "", width - 1  # one for the ellipsis
    for i in range(len(text)):  # a character from each end in turn, while they fit
        for end in ("head", "tail"):
            c = text[i] if end == "head" else text[-1 - i]
            if text_width(c) > room:
                return f"{head}…{tail}"
            room -= text_width(c)
            head, tail = (head + c, tail) if end == "head" else (head, c + tail)
    return f"{head}…{tail}"


def label_room(labels: list[str], font: float) -> float:
    """Inches beside and below a matrix for its tick labels, so they do not take its room:
    the widest as drawn ("W" is wider than "i"; a CJK character about two)."""
    renderer, props = RendererAgg(1, 1, 72), FontProperties(size=font)  # 72 dpi: points
    widths = [renderer.get_text_width_height_descent(t, props, ismath=False)[0] for t in labels]
    return max(widths, default=0) / 72


def plot_confusion(matrix: list[list[int]], labels: list[str], title: str, path: Path) -> None:
    cm = np.asarray(matrix)
    k = len(labels)
    labels = tick_labels(labels)
    size = min(4 + 0.35 * k, 24)
    font = min(10.0, 1000 / k)  # a line of text per cell: 150 labels at 6.7 pt
    # room for the labels beside and below the matrix, not taken from it (inches)
    text = label_room(labels, font)
    fig, ax = plt.subplots(figsize=(size + text, size * 0.85 + 0.75 * text))
    # from 0: a matrix of equal counts was drawn palest, its white counts unseen
    image = ax.imshow(cm, cmap="Blues", vmin=0)
    # parse_math off: "$" in a label is a dollar
    ax.set_xticks(range(k), labels, parse_math=False, fontsize=font)
    ax.set_yticks(range(k), labels, parse_math=False, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if k <= 20:
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(k):
            for j in range(k):
                color = "white" if cm[i, j] > threshold else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=color)
    else:  # too many cells to write counts in: a scale says what a colour means
        fig.colorbar(image, ax=ax, shrink=0.6, label="examples")
    fig.tight_layout()
    if _turn_ticks(fig, ax):
        fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # the square axes leave long labels out
    plt.close(fig)


def _turn_ticks(fig, ax) -> bool:
    """Turn the x labels when the widest is wider than a column: by 45 degrees, or upright
    where turned labels would still touch. True if they were turned."""
    renderer = fig.canvas.get_renderer()
    origin, one = ax.transData.transform([(0, 0), (1, 1)])
    cell = abs(one[0] - origin[0])
    ticks = ax.get_xticklabels()
    extents = [t.get_window_extent(renderer) for t in ticks]
    if max(e.width for e in extents) <= 0.9 * cell:
        return False
    height = max(e.height for e in extents)
    angle = 45 if cell * math.sin(math.radians(45)) >= 1.1 * height else 90
    for tick in ticks:
        tick.set_rotation(angle)
        tick.set_horizontalalignment("right" if angle == 45 else "center")
    return True
