"""report.md: what was run, on what data, how well (with n and CI) and at what cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fintune.config.schema import METRICS, ExperimentConfig
from fintune.evaluation.metrics import format_interval, per_class_edge_note, split_notes
from fintune.report.document import plain_text, table_row
from fintune.report.plots import (
    plot_confusion,
    plot_learning_rate,
    plot_loss,
    undrawable_note,
)

PLOTS = {"loss": "loss.png", "learning_rate": "learning_rate.png", "confusion": "confusion.png"}


def read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def write_report(run_dir: Path, config: ExperimentConfig, metrics: dict, data) -> Path:
    history = read_history(run_dir / "history.jsonl")
    plot_loss(history, run_dir / PLOTS["loss"], config.training.class_weights)
    plot_learning_rate(history, run_dir / PLOTS["learning_rate"])
    split = _first_split(metrics)
    plot_confusion(
        metrics[split]["confusion_matrix"],
        metrics["labels"],
        f"Confusion matrix ({split}, n={metrics[split]['n']})",
        run_dir / PLOTS["confusion"],
    )
    path = run_dir / "report.md"
    path.write_text(
        render(run_dir, config, metrics, data.fingerprint, data.report), encoding="utf-8"
    )
    return path


def render(run_dir: Path, config: ExperimentConfig, metrics: dict, fp: dict, report: dict) -> str:
    train, res = metrics["train"], metrics["resources"]
    out = [
        f"# {plain_text(config.name)}",
        "",
        f"Run `{run_dir.name}`: task {config.task}, model `{config.model.name}`, "
        f"method `{config.method.name}`, seed {config.seed}, device {metrics['device']}"
        f"{_precision(metrics)}.",
        "",
        "## Results",
        "",
        "Each metric with its bootstrap 95% confidence interval "
        f"({metrics[_first_split(metrics)]['bootstrap_samples']} resamples of the examples).",
        "",
        *_results_table(metrics, "ci95"),
    ]
    level = metrics[_first_split(metrics)].get("confidence", 0.95)
    if level != 0.95:  # evaluation.confidence: the same table at the configured level
        out += ["", f"At the configured {100 * level:.10g}% level:", ""]
        out += _results_table(metrics, "ci")
    splits = {split: metrics[split] for split in ("validation", "test") if split in metrics}
    out += [line for note in split_notes(splits) for line in ("", note)]
    out += ["", f"### Per class ({_first_split(metrics)})", ""]
    shown = metrics.get("test", metrics.get("validation"))
    per_class = shown["per_class"]
    out += ["With bootstrap 95% intervals; support is the number of examples of the label.", ""]
    out += ["| label | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for label in metrics["labels"]:
        row = per_class[label]
        numbers = [
            f"{row[k]:.4f} {_bracket(row['ci95'][k])}"
            if "ci95" in row  # metrics.json files written before per-class intervals
            else f"{row[k]:.4f}"
            for k in ("precision", "recall", "f1-score")
        ]
        out.append(table_row([label, *numbers, str(int(row["support"]))]))
    labels = [plain_text(label) for label in metrics["labels"]]  # "<!--" would hide the rest
    if note := per_class_edge_note(shown["confusion_matrix"], labels):
        out += ["", note]
    out += [
        "",
        "## Training and resources",
        "",
        "| figure | value |",
        "|---|---|",
        f"| trainable parameters | {train['trainable_params']:,} of {train['total_params']:,} "
        f"({100 * train['trainable_params'] / max(train['total_params'], 1):.2f}%) |",
        f"| training examples | {train['examples']:,} |",
        f"| epochs / optimiser steps | {_number(train['epochs'])} / {train['steps']}"
        + _early_stop(train, config.training)
        + " |",
        f"| model evaluated | {_kept(train, config.training.best_metric)} |",
        f"| training time | {format_seconds(train['runtime_s'])} s |",
        f"| training samples/s | {format_rate(train['samples_per_s'])} |",
        _train_loss_row(train, config.training.class_weights),
        f"| CPU % (100 = one core) avg / max | {res['cpu_percent_avg']} / {res['cpu_percent_max']}"
        f" of {res['cpu_cores']} cores |",
        f"| RSS MiB avg / max | {res['rss_mib_avg']} / {res['rss_mib_max']} |",
    ]
    if "gpu_mem_mib_avg" in res:
        out.append(
            f"| GPU memory MiB avg / max | {res['gpu_mem_mib_avg']} / {res['gpu_mem_mib_max']} |"
        )
    out += [
        "",
        "## Plots",
        "",
        f"![loss]({PLOTS['loss']})",
        "",
        f"![learning rate]({PLOTS['learning_rate']})",
        "",
        f"![confusion matrix]({PLOTS['confusion']})",
        "",
    ]
    if note := undrawable_note(metrics["labels"], "The confusion matrix"):
        out += [plain_text(note), ""]
    out += [
        "## Data",
        "",
        f"Source: {plain_text(str(report.get('source')))}. Fingerprint (sha256 of the "
        f"prepared splits): `{fp['sha256']}`.",
        "",
        table_row(["split", "n", *metrics["labels"]]),
        "|---|---|" + "---|" * len(metrics["labels"]),
    ]
    for split, counts in fp["counts"].items():
        per = [str(counts["labels"][label]) for label in metrics["labels"]]
        out.append(table_row([split, str(counts["n"]), *per]))
    if "test" in fp["counts"] and "test" not in metrics:
        out += ["", "The test split was held out and not scored (evaluation.test off)."]
    out += ["", *_quality_lines(report, config), ""]
    saved = ", `model/`" if config.output.save_model else " (no `model/`: output.save_model off)"
    out += [
        "Files: `config.yaml` (resolved config), `data.json`, `environment.json`, "
        f"`metrics.json`, `history.jsonl`, `predictions_*.csv`{saved}.",
        "",
    ]
    return "\n".join(out)


def _precision(metrics: dict) -> str:
    """ ", training precision bf16, weights loaded in float32": what training.precision
    resolved to and the dtype of most weights (older runs: none)."""
    precision, dtype = metrics.get("training_precision"), metrics.get("model_dtype")
    shown = f", training precision {precision}" if precision else ""
    return shown + (f", weights loaded in {dtype}" if dtype else "")


def _kept(train: dict, metric: str) -> str:
    if train.get("best_checkpoint_step") is None:
        return "the last (training.load_best_model off)"
    score = f"{train['best_checkpoint_metric']:.4f}"
    loss = train.get("best_checkpoint_loss")  # absent in runs made before it was recorded
    if metric != "loss" and loss is not None:
        score += f"; of equal scores, the lowest validation loss, {loss:.4f}"
    return (
        f"the best on validation {metric} ({score}), at epoch "
        f"{_number(train['best_checkpoint_epoch'])} (step {train['best_checkpoint_step']})"
    )


def _results_table(metrics: dict, interval: str) -> list[str]:
    """Validation and test rows, each metric with its `interval` ("ci95" or "ci")."""
    rows = ["| split | n | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    for split in ("validation", "test"):
        if split in metrics:
            m = metrics[split]
            cells = [f"{m[k]:.4f} {_bracket(m[interval][k])}" for k in METRICS]
            rows.append(f"| {split} | {m['n']} | " + " | ".join(cells) + " |")
    return rows


def _bracket(interval: list) -> str:
    """[low, high], or a dash where the rate is undefined in every resample."""
    if None in interval:
        return "[—]"
    return format_interval(*interval)


def format_seconds(seconds: float | None) -> str:
    """A duration with the digits it needs: a run of a few steps trains in milliseconds,
    which one decimal (or none) showed as 0. runtime_s is kept to the millisecond."""
    if seconds is None:
        return "—"
    if seconds < 0.0005:
        return "< 0.001"
    return f"{seconds:.0f}" if seconds >= 100 else f"{seconds:.3g}"


def format_rate(value: float | None) -> str:
    """Samples/s with three significant digits below 100: a large model on a CPU trains at
    0.04 samples/s, which a fixed decimal or two showed as 0."""
    if value is None:
        return "—"
    return f"{value:.1f}" if value >= 100 else f"{value:.3g}"


def _early_stop(train: dict, training) -> str:
    """A run that stopped early looked like one configured shorter: '2 / 12' for 6 epochs."""
    if not train.get("stopped_early"):
        return ""
    return (
        f" (stopped early: {training.early_stopping_patience} evaluations in a row without a "
        "better checkpoint)"
    )


def _number(value: float | None) -> str:
    return "?" if value is None else f"{value:.4g}"  # 0.0952 epochs, not 0.09523809523809523


def _first_split(metrics: dict) -> str:
    return "test" if "test" in metrics else "validation"


def _quality_lines(report: dict[str, Any], config: ExperimentConfig) -> list[str]:
    lines = []
    for split, q in report.get("duplicates", {}).items():
        if isinstance(q, dict):
            across = q.get("dropped_across_splits")
            lines.append(
                f"- source {split}: {q['rows']} rows, {q['duplicate_rows']} exact duplicates "
                f"({config.data.duplicates}), {q['conflicting_texts']} texts with conflicting "
                f"labels over {q['conflicting_rows']} rows ({config.data.conflicts}); "
                + (f"{across} dropped as also in another split; " if across else "")
                + f"{q['kept_rows']} kept"
            )
        elif split == "conflicting_texts_across_splits" and q:
            examples = report["duplicates"].get("examples_of_conflicts_across_splits", [])[:2]
            shown = [plain_text(repr(t if len(t) <= 80 else t[:80] + "…")) for t in examples]
            such = f" (such as {', '.join(shown)}; data.json lists up to 5)" if shown else ""
            lines.append(f"- texts with another label in another split: {q}{such}")
        elif split != "examples_of_conflicts_across_splits":
            lines.append(f"- {split.replace('_', ' ')}: {q}")
    shared = report.get("shared_texts", {})
    if shared:
        pairs = ", ".join(f"{pair} {n}" for pair, n in shared.items())
        lines.append(f"- texts present in two splits after splitting (leakage): {pairs}")
    variants = {k: n for k, n in report.get("unicode_variants", {}).items() if k != "example"}
    if variants:
        counts = ", ".join(f"{key} {n}" for key, n in variants.items())
        lines.append(
            "- texts equal to another in a split or across two only in Unicode form "
            f"(composed or decomposed accents; neither deduplicated nor dropped): {counts}"
        )
    if near := report.get("near_copies", {}):
        counts = ", ".join(f"{pair} {copies['texts']}" for pair, copies in near.items())
        lines.append(
            "- texts of two splits equal but for case, spacing or punctuation (near copies; "
            f"neither deduplicated nor dropped): {counts}"
        )
    truncated = report.get("truncated", {})
    if truncated:
        counts = ", ".join(f"{role} {n}" for role, n in truncated.items() if role != "max_length")
        lines.append(
            f"- texts cut at model.max_length ({truncated['max_length']} tokens): {counts}"
        )
    if report.get("emptied_by_cleaning"):
        lines.append(f"- texts emptied by cleaning and removed: {report['emptied_by_cleaning']}")
    for role in ("train", "validation", "test"):
        if missing := report.get(f"labels_missing_from_{role}"):
            example = "training example" if role == "train" else f"{role} example"
            lines.append(f"- labels with no {example}: {', '.join(map(plain_text, missing))}")
    return lines


def _train_loss_row(train: dict, weighted: bool = False) -> str:
    """metrics.json's final_train_loss is the Trainer's mean over all steps (it reads higher
    than the loss at the end); the loss last logged is beside it. `weighted`: the loss of
    training.class_weights, not the plain cross-entropy of the validation loss."""
    name = "training loss (class-weighted)" if weighted else "training loss"
    if train.get("last_train_loss") is None:  # no training step logged, or an older run
        return f"| {name}: mean of all steps | {_number(train.get('final_train_loss'))} |"
    return (
        f"| {name}: last logged (step {train['last_train_loss_step']}) / mean of all "
        f"steps | {train['last_train_loss']:.4f} / {train['final_train_loss']:.4f} |"
    )
