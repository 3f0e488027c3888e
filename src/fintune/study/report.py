"""The study report: per group (everything but the baseline axes and the seed), a metrics
table with CIs and a paired verdict against the baseline, a resource table, and plots."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fintune.config.schema import METRICS  # noqa: E402
from fintune.errors import FintuneError  # noqa: E402
from fintune.evaluation.metrics import (  # noqa: E402
    boundary_note,
    format_interval,
    seed_edge_note,
    small_sample_note,
)
from fintune.evaluation.paired import (  # noqa: E402
    format_difference,
    format_p,
    paired_bootstrap,
    seed_mean_ci,
)
from fintune.report.document import Document, bold, lead_bold  # noqa: E402
from fintune.report.markdown import format_rate, format_seconds, read_history  # noqa: E402
from fintune.report.plots import (  # noqa: E402
    label_room,
    lone,
    nothing_logged,
    tick_labels,
    undrawable_note,
)
from fintune.run_dir import write_json  # noqa: E402
from fintune.study.compare import CHANGED, finished_metrics  # noqa: E402
from fintune.study.spec import (  # noqa: E402
    SEED_AXIS,
    Cell,
    StudySpec,
    baseline_coords,
    group_key,
)

WRITTEN = ".written.json"  # in plots/: the files the last report wrote
STUDY_PLOTS = ("-metrics.png", "-loss.png", "-lr.png", "-confusion.png")

SHORT = {
    "accuracy": "acc",
    "precision_macro": "P macro",
    "recall_macro": "R macro",
    "f1_macro": "F1 macro",
    "precision_weighted": "P weighted",
    "recall_weighted": "R weighted",
    "f1_weighted": "F1 weighted",
}


@dataclass
class Finished:
    cell: Cell
    run_dir: Path
    metrics: dict[str, Any]

    @cached_property
    def _predictions(self) -> pd.DataFrame:
        path = self.run_dir / "predictions_test.csv"
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)  # labels stay text
        index = {label: i for i, label in enumerate(self.metrics["labels"])}
        for column in ("label", "predicted"):
            ids = frame[column].map(index)
            if ids.isna().any():
                value = frame[column][ids.isna()].iloc[0]
                raise FintuneError(f"{path}: {column} {value!r} is not one of the run's labels")
            frame[column] = ids.astype(int)
        return frame

    @property
    def block(self) -> tuple[np.ndarray, np.ndarray]:
        """(true ids, predicted ids) on the test split, in the run's order."""
        return self._predictions["label"].to_numpy(), self._predictions["predicted"].to_numpy()

    @cached_property
    def test_set(self) -> str:
        """Names the run's test examples and their labels: runs sharing them are resampled
        together. By the data's own text, so runs with other data.cleaning pair."""
        frame = self._predictions
        examples = "\x00".join(frame["text"] + "\x01" + frame["label"].astype(str))
        return hashlib.sha256(examples.encode()).hexdigest()


def row_interval(runs: list[Finished], spec: StudySpec) -> dict[str, list[float]]:
    """95% CI per metric: the run's own for one seed, else that of the mean over seeds."""
    if len(runs) == 1:
        return runs[0].metrics["test"]["ci95"]
    k = len(runs[0].metrics["labels"])
    blocks, test_sets = [r.block for r in runs], [r.test_set for r in runs]
    return seed_mean_ci(blocks, k, spec.bootstrap_samples, test_sets=test_sets)


def row_key(cell: Cell, spec: StudySpec) -> str:
    return ", ".join(f"{a}={cell.coords[a]}" for a in spec.baseline)


def write_study_report(
    folder: Path, spec: StudySpec, cells: list[Cell], state: dict[str, Any], interim=False
) -> Path:
    """`interim`: written after each finished cell while the study runs, so an interrupted
    study has a report; without plots, which are the slow part."""
    finished: dict[str, Finished] = {}
    outdated, failed, missing = [], [], []  # outdated: its config, data or model changed since
    for cell in cells:
        entry = state.get(cell.id, {})
        if entry and (not cell.made(entry) or entry.get("status") in CHANGED):
            outdated.append(cell)
            continue
        metrics = finished_metrics(entry, folder)
        if metrics is not None:
            finished[cell.id] = Finished(cell, folder / entry["run_dir"], metrics)
        elif entry.get("status") == "done":
            missing.append(cell)
        elif entry.get("status") == "failed":
            failed.append(cell)
    plots = folder / "plots"
    plots.mkdir(exist_ok=True)
    unfinished = {  # why a cell has no result, by its coords
        json.dumps(c.coords, sort_keys=True): why
        for why, group in (("failed", failed), ("outdated", outdated), ("missing", missing))
        for c in group
    }

    doc = Document(f"Study {spec.name}")
    pending = [c for c in cells if c.id not in finished and c not in failed + outdated + missing]
    doc.text(
        f"{len(cells)} cells: {len(finished)} finished, {len(failed)} failed, "
        f"{len(outdated)} outdated, {len(missing)} missing, {len(pending)} not run. "
        "Baseline of each group: "
        + ", ".join(f"{a}={v}" for a, v in spec.baseline.items())
        + f". Metrics on each run's test split with bootstrap 95% CIs. Verdicts compare a row "
        f"with its group's baseline on the same test examples by a paired bootstrap of "
        f"{spec.metric} ({spec.bootstrap_samples} resamples, seeds paired). Next to it, "
        + (
            "an exact test on accuracy: McNemar's for one seed; with several seeds on one test "
            "set, the same test on each example's correctness averaged over the seeds."
            if spec.metric == "accuracy"
            else f"a randomization test on {spec.metric}: the two models' predictions of each "
            f"example trade places at random ({spec.bootstrap_samples} times; seeds on one "
            "test set trade together), and p is the share of differences as large as the "
            "observed one."
        )
        + " The bracket counts the examples the row gets right more often than the baseline, "
        "and the other way round. A row is called better or worse only when this p < 0.05 "
        "too. With several seeds a value is the mean ± std over seeds, and its interval covers "
        "the mean (over resamples of the test examples; the seeds are taken as they are)."
    )
    if interim:
        doc.text(
            bold("This is an interim report") + ", written while the study runs: the plots come "
            "with the report written when every cell has run."
        )

    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(group_key(cell, spec), []).append(cell)
    used_slugs: set[str] = set()
    for key, members in groups.items():
        title = ", ".join(f"{a}={v}" for a, v in key) or "all cells"
        rows: dict[str, list[Finished]] = {}
        for cell in members:
            if cell.id in finished:
                rows.setdefault(row_key(cell, spec), []).append(finished[cell.id])
        doc.heading(title)
        if not rows:
            doc.text("No finished cells yet.")
            continue
        intervals = {name: row_interval(runs, spec) for name, runs in rows.items()}
        _metrics_table(doc, spec, rows, intervals, finished, unfinished)
        _resource_table(doc, rows)
        if not interim:
            _plots(doc, plots, plot_slug(title, used_slugs), rows, intervals)

    if failed:
        doc.heading("Failed cells")
        doc.text("Rerun with `fintune compare STUDY.yaml --retry-failed` to try them again.")
        doc.table(
            ["cell", "error", "traceback"],
            [
                [c.id, state[c.id]["error"].replace("|", "/"), f"`{state[c.id]['traceback']}`"]
                for c in failed
            ],
        )
    if outdated:
        doc.heading("Outdated")
        doc.text(
            "These cells' configs (or data, or local model files: status `data changed` "
            "or `model changed` in cells.json) changed since their last run, so their "
            "results are left out; `fintune compare "
            "STUDY.yaml` runs them again: " + ", ".join(c.id for c in outdated)
        )
    if missing:
        doc.heading("Missing results")
        doc.text(
            "These cells finished, but their run directories no longer hold a readable "
            "`metrics.json` and a whole `predictions_test.csv` (deleted, changed by hand or "
            "cut short); "
            "`fintune compare STUDY.yaml` runs them again: " + ", ".join(c.id for c in missing)
        )
    if pending:
        doc.heading("Not run")
        doc.text(", ".join(c.id for c in pending))
    if not interim:
        drop_stale_plots(doc, plots, lambda name: name.endswith(STUDY_PLOTS))
    md, _ = doc.write(folder)
    return md


def drop_stale_plots(doc: Document, plots: Path, ours: Callable[[str], bool]) -> None:
    """Remove the plots an earlier report wrote that this one does not show (a group no
    longer in the study). Only files the report wrote: those listed in plots/.written.json,
    or, in a folder from before that list, those named as its plots are (`ours`)."""
    shown = {block[1].name for block in doc.blocks if block[0] == "img"}
    try:
        earlier = json.loads((plots / WRITTEN).read_text())
    except (OSError, ValueError):
        earlier = None
    if not (isinstance(earlier, list) and all(isinstance(n, str) for n in earlier)):
        earlier = [path.name for path in plots.glob("*.png") if ours(path.name)]
    for name in set(earlier) - shown:
        if Path(name).name == name and name.endswith(".png"):  # never a path out of plots/
            (plots / name).unlink(missing_ok=True)
    write_json(plots / WRITTEN, sorted(shown))


def _metrics_table(
    doc: Document,
    spec: StudySpec,
    rows: dict[str, list[Finished]],
    intervals: dict[str, dict[str, list[float]]],
    finished: dict,
    unfinished: dict[str, str] | None = None,
) -> None:
    header = ["cell", "seeds", "n test", *[SHORT[m] for m in METRICS]]
    test = "exact p" if spec.metric == "accuracy" else "randomization p"
    header += [f"Δ {SHORT[spec.metric]} vs baseline [95% CI]", "verdict", test]
    body = []
    for name, runs in rows.items():
        values = {m: np.array([r.metrics["test"][m] for r in runs]) for m in METRICS}
        ci = intervals[name]
        if len(runs) == 1:
            cells = [f"{values[m][0]:.4f} {format_interval(*ci[m])}" for m in METRICS]
        else:
            cells = [
                f"{values[m].mean():.4f} ± {values[m].std(ddof=1):.4f} {format_interval(*ci[m])}"
                for m in METRICS
            ]
        seeds = ",".join(r.cell.coords.get(SEED_AXIS, str(r.metrics["seed"])) for r in runs)
        n = "/".join(str(size) for size in sorted({r.metrics["test"]["n"] for r in runs}))
        versus = _versus_baseline(runs, spec, finished, unfinished)
        body.append([bold(name), seeds, n, *cells, *versus])
    doc.table(header, body)
    sizes = {
        f"{name} test": min(r.metrics["test"]["n"] for r in runs) for name, runs in rows.items()
    }
    # a row of one run shows its own interval; a row of seeds the interval of their mean
    edges = {
        f"{name} test": (runs[0].metrics["test"]["n"], runs[0].metrics["test"]["accuracy"])
        for name, runs in rows.items()
        if len(runs) == 1
    }
    seed_edges = {
        f"{name} test (seed {r.metrics['seed']})": (
            r.metrics["test"]["n"],
            r.metrics["test"]["accuracy"],
        )
        for name, runs in rows.items()
        if len(runs) > 1
        for r in runs
    }
    notes = small_sample_note(sizes), boundary_note(edges), seed_edge_note(seed_edges)
    for note in filter(None, notes):
        doc.text(lead_bold(note))


def plot_slug(title: str, used: set[str]) -> str:
    """A group's plot file stem: its title made file-safe, shortened with a hash of the title
    when long (file names have a length limit) or when another group's title cleans to it."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", title).strip("-") or "all"
    if len(slug) > 60 or slug in used:
        slug = f"{slug[:51]}-{hashlib.sha256(title.encode()).hexdigest()[:8]}"
    used.add(slug)
    return slug


def _versus_baseline(
    runs: list[Finished], spec: StudySpec, finished: dict, unfinished: dict | None = None
) -> list[str]:
    """`unfinished`: why a cell has no result (failed, outdated, missing), by its coords."""
    pairs = []
    for run in runs:
        wanted = baseline_coords(run.cell, spec.baseline)
        base = next((f for f in finished.values() if f.cell.coords == wanted), None)
        if base is not None:
            pairs.append((base, run))
    if not pairs:
        why = {
            (unfinished or {}).get(
                json.dumps(baseline_coords(run.cell, spec.baseline), sort_keys=True),
                "not finished",
            )
            for run in runs
        }
        return [f"baseline {'/'.join(sorted(why))}", "", ""]
    if all(base is run for base, run in pairs):
        return ["baseline", "", ""]
    if any(base.test_set != run.test_set for base, run in pairs):
        return ["not paired: the baseline was tested on other examples", "", ""]
    base_blocks = [b.block for b, _ in pairs]
    cand_blocks = [r.block for _, r in pairs]
    k = len(runs[0].metrics["labels"])
    test_sets = [r.test_set for _, r in pairs]
    try:
        compared = paired_bootstrap(
            base_blocks, cand_blocks, k, spec.bootstrap_samples, test_sets=test_sets
        )
    except ValueError as error:  # different test examples: no paired test possible
        return [f"not paired: {error}", "", ""]
    result = compared[spec.metric]
    low, high = result["ci95"]
    # seeds whose baseline did not finish are left out of the pairs, and so are the
    # baseline's seeds this row lacks: Δ is then not the difference of the two rows' means
    paired, base_seeds = len(pairs), _baseline_row_size(runs[0], spec, finished)
    partial = ""
    if paired < len(runs) and paired < base_seeds:
        partial = f" ({paired} seeds paired, of {len(runs)} here and {base_seeds} in the baseline)"
    elif paired < len(runs):
        partial = f" ({paired} of {len(runs)} seeds paired)"
    elif paired < base_seeds:
        partial = f" ({paired} of the baseline's {base_seeds} seeds paired)"
    return [
        format_difference(result["difference"], low, high) + partial,
        bold(result["verdict"]) if result["verdict"] != "within noise" else "within noise",
        f"{format_p(result['p'], result['p_floor'])} "
        f"({result['candidate_ahead']} vs {result['baseline_ahead']})",
    ]


def _baseline_row_size(run: Finished, spec: StudySpec, finished: dict) -> int:
    """How many finished runs (seeds) the baseline row of `run` has."""
    wanted = baseline_coords(run.cell, spec.baseline)
    wanted.pop(SEED_AXIS, None)
    return sum(
        {a: v for a, v in f.cell.coords.items() if a != SEED_AXIS} == wanted
        for f in finished.values()
    )


def _mean(runs: list[Finished], section: str, key: str) -> float | None:
    values = [r.metrics.get(section, {}).get(key) for r in runs]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _resource_table(doc: Document, rows: dict[str, list[Finished]]) -> None:
    columns = [
        ("train time s", "train", "runtime_s", format_seconds),
        ("samples/s", "train", "samples_per_s", format_rate),
        ("trainable params", "train", "trainable_params", "{:,.0f}"),
        ("CPU % avg (100 = one core)", "resources", "cpu_percent_avg", "{:.0f}"),
        ("CPU % max (100 = one core)", "resources", "cpu_percent_max", "{:.0f}"),
        ("RSS MiB avg", "resources", "rss_mib_avg", "{:.0f}"),
        ("RSS MiB max", "resources", "rss_mib_max", "{:.0f}"),
        ("GPU MiB avg", "resources", "gpu_mem_mib_avg", "{:.0f}"),
        ("GPU MiB max", "resources", "gpu_mem_mib_max", "{:.0f}"),
    ]
    everyone = [run for runs in rows.values() for run in runs]
    # GPU memory on CUDA only, as in a run's report: no column of dashes for a CPU study
    columns = [
        c for c in columns if not c[2].startswith("gpu_") or _mean(everyone, c[1], c[2]) is not None
    ]
    body = []
    for name, runs in rows.items():
        cells = [_devices(runs)]
        for _, section, key, fmt in columns:
            value = _mean(runs, section, key)
            if value is None:
                cells.append("—")
            else:
                cells.append(fmt(value) if callable(fmt) else fmt.format(value))
        body.append([name, *cells])
    doc.table(["cell (mean over seeds)", "device", *[c[0] for c in columns]], body)
    devices = sorted({d for row in body for d in row[1].split("/")})
    if len(devices) > 1:  # a study resumed on another machine keeps its finished cells
        doc.text(
            bold("Runs on different devices") + f" ({', '.join(devices)}): their training times, "
            "samples/s and memory are not comparable."
        )


def _devices(runs: list[Finished]) -> str:
    """The devices a row's runs trained on ("?" for a run that does not say)."""
    return "/".join(sorted({str(r.metrics.get("device", "?")) for r in runs}))


@plt.rc_context({"text.parse_math": False})  # "$" in a row's name is a dollar, not TeX
def _plots(
    doc: Document,
    folder: Path,
    slug: str,
    rows: dict[str, list[Finished]],
    intervals: dict[str, dict[str, list[float]]],
) -> None:
    names = list(rows)
    colors = [row_look(i)[0] for i in range(len(names))]
    shown = ["accuracy", "f1_macro", "f1_weighted"]

    # tall enough for the legend beside the plot: a line of 8-point text per row
    height = max(3.8, 0.18 * len(names) + 0.6)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(names) + 3), height))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        runs = rows[name]
        means, lows, highs = [], [], []
        for m in shown:
            vals = [r.metrics["test"][m] for r in runs]
            mean = float(np.mean(vals))
            low, high = intervals[name][m]
            means.append(mean)
            lows.append(max(0.0, mean - low))
            highs.append(max(0.0, high - mean))
        x = np.arange(len(shown)) + (i - (len(names) - 1) / 2) * width
        hatch = row_look(i)[1]
        bar = dict(color=colors[i], hatch=hatch, edgecolor="white" if hatch else None)
        ax.bar(x, means, width, yerr=[lows, highs], capsize=3, label=name, **bar)
    ax.set_xticks(np.arange(len(shown)), shown)
    bounds = [b for name in names for m in shown for b in intervals[name][m]]
    # from 0, so a bar's height is its value; up to the highest interval's end
    ax.set_ylim(0.0, min(1.0, max(bounds) + 0.05))
    ax.set_ylabel("test score (95% CI)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # clear of the bars
    ax.grid(axis="y", alpha=0.3)
    _save(fig, folder / f"{slug}-metrics.png", doc, "test metrics with 95% CIs")

    histories, unreadable = {}, []
    for name in names:
        path = rows[name][0].run_dir / "history.jsonl"
        try:  # a missing file reads as no records: a row left out of the plots unnamed
            history = read_history(path)
            whole = path.is_file() and all(isinstance(r, dict) and "step" in r for r in history)
        except (OSError, ValueError):  # cut mid-line, not UTF-8: the run's results still stand
            whole = False
        histories[name] = history if whole else []
        if not whole:
            unreadable.append(name)
    if unreadable:
        doc.text(
            "; ".join(unreadable)  # Document.text escapes what it shows
            + ": no loss or learning-rate curve, its history.jsonl is missing or cannot be read."
        )
    for key, label, title, fname in (
        ("loss", "loss", "Training (solid) and validation (dashed) loss", "loss"),
        ("learning_rate", "learning rate", "Learning-rate schedules", "lr"),
    ):
        fig, ax = plt.subplots(figsize=(7, height))
        for i, name in enumerate(names):
            history = histories[name]
            points = [(r["step"], r[key]) for r in history if key in r]
            marker = row_look(i)[2]
            config = rows[name][0].cell.config
            weighted = key == "loss" and config is not None and config.training.class_weights
            if points:
                ax.plot(
                    *zip(*points, strict=True),
                    color=colors[i],
                    label=f"{name} (training loss class-weighted)" if weighted else name,
                    marker=marker or lone(points),
                    markevery=max(1, len(points) // 8),
                )
            if key == "loss":
                evals = [(r["step"], r["eval_loss"]) for r in history if "eval_loss" in r]
                if evals:  # in the legend too when the row logged no training loss
                    style = {"color": colors[i], "marker": marker or "o"}
                    named = {} if points else {"label": name}
                    ax.plot(*zip(*evals, strict=True), "--", **style, **named)
        ax.set_xlabel("optimiser step (first seed of each row)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # no step 1.25
        ax.set_ylabel(label)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside
        else:  # no row logged any
            nothing_logged(ax, label)
        _save(fig, folder / f"{slug}-{fname}.png", doc, title)

    # rows may be on other data (an axis over data.path): each matrix names its own labels
    names_of = {name: rows[name][0].metrics["labels"] for name in names}
    ticks_of = {name: tick_labels(names_of[name]) for name in names}
    widest = max(ticks_of.values(), key=len)
    cols = min(4, len(names))
    nrows = (len(names) + cols - 1) // cols
    # capped, as a run's own matrix is: 300 labels in 8 cells drew 21,000 pixels square
    size = min(2.2 + 0.25 * len(widest), 12)
    font = min(7.0, 600 / len(widest))  # a line of text per row: 300 labels at 2 pt
    room = max(label_room(labels, font) for labels in ticks_of.values())
    fig, axes = plt.subplots(
        nrows, cols, figsize=((size + room) * cols, (size + 0.75 * room) * nrows), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, name in zip(axes.flat, names, strict=False):
        cm = np.sum([np.array(r.metrics["test"]["confusion_matrix"]) for r in rows[name]], axis=0)
        labels = ticks_of[name]
        ax.axis("on")
        image = ax.imshow(cm, cmap="Blues", vmin=0)  # equal counts: dark, as their text
        ax.set_title(f"{name} (n={int(cm.sum())})", fontsize=9)
        ticks = {"fontsize": font, "parse_math": False}  # tick labels are made when drawn
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", **ticks)
        ax.set_yticks(range(len(labels)), labels, **ticks)
        if len(labels) <= 10:
            for i in range(len(labels)):
                for j in range(len(labels)):
                    color = "white" if cm[i, j] > cm.max() / 2 else "black"
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color=color)
        else:  # too many cells to write counts in: a scale says what a colour means
            fig.colorbar(image, ax=ax, shrink=0.6, label="examples")
    fig.suptitle(
        "Test confusion matrices (true rows, predicted columns; summed over seeds)", fontsize=10
    )
    _save(fig, folder / f"{slug}-confusion.png", doc, "confusion matrices")
    for labels in dict.fromkeys(tuple(labels) for labels in names_of.values()):
        if note := undrawable_note(list(labels), "Each confusion matrix"):
            doc.text(note)


def row_look(i: int) -> tuple[Any, str | None, str | None]:
    """Row i's colour, bar hatch and line marker: ten colours, then the same colours with
    another hatch and marker, so no two rows of a plot look alike."""
    turn = i // 10
    hatch = (None, "//", "..", "xx", "\\\\", "oo", "++", "--")[turn % 8]
    marker = (None, "s", "^", "D", "v", "P", "X", "*")[turn % 8]
    return plt.get_cmap("tab10")(i % 10), hatch, marker


def _save(fig, path: Path, doc: Document, alt: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")  # nothing cut: a legend beside the plot
    plt.close(fig)
    doc.image(path, alt)
