"""Classification metrics, each with n and a bootstrap confidence interval.

All headline metrics are functions of the confusion matrix, so a bootstrap replicate is
just a re-weighted confusion matrix: draw multinomial counts over the n examples and
bin them. That makes 1,000 replicates of all seven metrics take milliseconds.
Definitions match scikit-learn's (zero_division=0), which the tests check.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import psutil
from sklearn.metrics import precision_recall_fscore_support

from fintune.config.schema import METRICS
from fintune.errors import FintuneError

# Below this many examples a percentile bootstrap interval is too narrow (it cannot reach
# outcomes the sample lacks: 10 of 10 right gives [1.0, 1.0]); reports say so.
SMALL_SAMPLE = 30


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int, weights=None) -> np.ndarray:
    return np.bincount(y_true * k + y_pred, weights=weights, minlength=k * k).reshape(k, k)


def present_classes(cm: np.ndarray) -> np.ndarray:
    """The classes a macro average covers: those in y_true or y_pred, as in scikit-learn."""
    return (cm.sum(axis=-1) + cm.sum(axis=-2)) > 0


def metrics_from_confusion(cm: np.ndarray, whole: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of a (true x predicted) count matrix; a batch of matrices works too.

    `whole`, for bootstrap resamples: the whole sample's matrix. The macro averages then
    cover its classes, and a rate a resample cannot define (a rare class it lacks) keeps
    its whole-sample value: counted as 0 it pulled a perfect classifier's macro F1 down to
    [0.67, 1.0]; left out, it split the interval in two.
    """
    cm = np.asarray(cm, dtype=float)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)  # true counts per class
    n = support.sum(axis=-1)
    if whole is None:
        precision, recall, f1 = per_class_rates(cm)
        present = present_classes(cm)
    else:
        rates = zip(per_class_rates(cm, np.nan), per_class_rates(whole), strict=True)
        precision, recall, f1 = (np.where(np.isnan(r), w, r) for r, w in rates)
        present = present_classes(np.asarray(whole))
    n_present = present.sum(axis=-1)

    def macro(x: np.ndarray) -> np.ndarray:
        return np.where(present, x, 0.0).sum(axis=-1) / np.maximum(n_present, 1)

    def weighted(x: np.ndarray) -> np.ndarray:
        return (x * support).sum(axis=-1) / np.maximum(n, 1)

    return {
        "accuracy": tp.sum(axis=-1) / np.maximum(n, 1),
        "precision_macro": macro(precision),
        "recall_macro": macro(recall),
        "f1_macro": macro(f1),
        "precision_weighted": weighted(precision),
        "recall_weighted": weighted(recall),
        "f1_weighted": weighted(f1),
    }


def per_class_rates(
    cm: np.ndarray, undefined: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 of each class (last axis). `undefined` where a rate is
    (no prediction of the class, no example of it, neither): 0 as scikit-learn's
    zero_division=0; NaN for bootstrap resamples, which say nothing about an absent class."""
    cm = np.asarray(cm, dtype=float)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support, predicted = cm.sum(axis=-1), cm.sum(axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, undefined)
        recall = np.where(support > 0, tp / support, undefined)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    f1 = np.where((predicted > 0) | (support > 0), f1, undefined)
    return precision, recall, f1


def bootstrap_confusions(
    y_true: np.ndarray, predictions: list[np.ndarray], k: int, samples: int, rng
) -> list[np.ndarray]:
    """Confusion matrices (samples x k x k) of each prediction array under the same
    resamples of the examples: a paired bootstrap when there are several."""
    cells = [y_true * k + y_pred for y_pred in predictions]
    matrices = [np.zeros((samples, k * k)) for _ in predictions]
    for start, counts in resample_counts(len(y_true), samples, rng):
        for flat, out in zip(cells, matrices, strict=True):
            for cell in np.unique(flat):  # add up the weights of examples sharing a cell
                out[start : start + len(counts), cell] = counts[:, flat == cell].sum(axis=1)
    return [m.reshape(samples, k, k) for m in matrices]


def resample_counts(
    n: int, samples: int, rng: np.random.Generator
) -> Iterator[tuple[int, np.ndarray]]:
    """(first replicate, counts) chunks: how often each of n examples is drawn in each
    bootstrap replicate, (chunk x n)."""
    if n == 0:  # every interval below resamples through here
        raise ValueError("no examples to score: a confidence interval needs at least one")
    chunk = max(1, 2_000_000 // n)  # bounds memory at about 16 MB per chunk
    for start in range(0, samples, chunk):
        size = min(chunk, samples - start)
        yield start, rng.multinomial(n, np.full(n, 1.0 / n), size=size)


def bootstrap_bytes(samples: int, k: int) -> int:
    """Memory one split's bootstrap holds at once: a k x k confusion matrix per resample,
    its per-class rates and metrics, and a chunk of resample counts (measured: within 10%
    at 20 and 77 labels; 77 labels take 50 MiB per 1,000 resamples)."""
    return samples * (k * k + 8 * k + 16) * 8 + 16 * 2**20


def check_bootstrap_memory(
    samples: int, k: int, copies: int = 1, field: str = "evaluation.bootstrap_samples"
) -> None:
    """`field` must fit in memory: one slip (1000000 on 77 labels, about 50 GB) failed only
    after training, before the model was saved. `copies`: prediction arrays resampled at
    once (a study's paired test of a row of n seeds: 2n)."""
    need, free = copies * bootstrap_bytes(samples, k), psutil.virtual_memory().available
    if need > 0.8 * free:
        raise FintuneError(
            f"{field}: {samples:,} resamples of {k} labels need about "
            f"{need / 2**30:.1f} GiB, and this machine has {free / 2**30:.1f} GiB free; "
            "1,000 to 10,000 resamples are plenty for a 95% interval"
        )


def bootstrap_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    k: int,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Percentile bootstrap interval of every metric, resampling examples with replacement."""
    matrices = _resampled(y_true, y_pred, k, samples, seed)
    replicates = metrics_from_confusion(matrices, confusion(y_true, y_pred, k))
    return {name: _interval(values, confidence) for name, values in replicates.items()}


def _resampled(y_true: np.ndarray, y_pred: np.ndarray, k: int, samples: int, seed: int):
    (matrices,) = bootstrap_confusions(y_true, [y_pred], k, samples, np.random.default_rng(seed))
    return matrices


def _interval(replicates: np.ndarray, confidence: float) -> list:
    """Percentile interval over the first axis: [low, high], or per class [[lows], [highs]].
    NaN replicates (a rate undefined in that resample) are left out; None if all are."""
    tail = (1 - confidence) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a class undefined in every resample
        low, high = np.nanpercentile(replicates, [tail, 100 - tail], axis=0)
    return [_none_if_nan(low), _none_if_nan(high)]


def _none_if_nan(values: np.ndarray):
    if values.ndim == 0:
        return None if np.isnan(values) else float(values)
    return [None if np.isnan(v) else float(v) for v in values]


def evaluate_predictions(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    labels: list[str],
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    losses: np.ndarray | None = None,
) -> dict[str, Any]:
    """Headline metrics, n, CI, confusion matrix and per-class report for one split.
    `losses`, per example: their mean is `loss`, with intervals over the same resamples."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    k = len(labels)
    cm = confusion(y_true, y_pred, k)
    point = {name: float(value) for name, value in metrics_from_confusion(cm).items()}
    result: dict[str, Any] = {name: point[name] for name in METRICS}
    result["n"] = int(len(y_true))
    matrices = _resampled(y_true, y_pred, k, samples, seed)
    replicates = metrics_from_confusion(matrices, cm)
    if losses is not None:
        losses = np.asarray(losses, dtype=float)
        result["loss"] = float(losses.mean())
        counts = resample_counts(len(losses), samples, np.random.default_rng(seed))
        replicates["loss"] = np.concatenate([c @ losses for _, c in counts]) / len(losses)
    result["ci95"] = {name: _interval(values, 0.95) for name, values in replicates.items()}
    if confidence != 0.95:
        result["ci"] = {name: _interval(values, confidence) for name, values in replicates.items()}
    result["confidence"] = confidence
    result["bootstrap_samples"] = samples
    result["confusion_matrix"] = cm.astype(int).tolist()
    # Labels only: the averages are the headline metrics above (a label may even be
    # called "macro avg").
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(k)), zero_division=0
    )
    rates = zip(("precision", "recall", "f1-score"), per_class_rates(matrices, np.nan), strict=True)
    bounds = {name: _interval(values, 0.95) for name, values in rates}
    result["per_class"] = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1-score": float(f1[i]),
            "support": int(support[i]),
            "ci95": {name: [low[i], high[i]] for name, (low, high) in bounds.items()},
        }
        for i, label in enumerate(labels)
    }
    return result


def rounded_out(value: float, digits: int, up: bool) -> float:
    """An interval's bound rounded away from its inside, down for a lower bound and up for
    an upper, so a shown interval is never narrower than the computed one (an exact lower
    bound of 0.85753 is 0.857, not 0.858). A hair of tolerance keeps a float's error (a
    bound of 0.9 stored as 0.9000000000000001) from widening it by a last digit."""
    scaled = value * 10**digits
    return (math.ceil(scaled - 1e-6) if up else math.floor(scaled + 1e-6)) / 10**digits


def format_interval(low: float, high: float, digits: int = 3) -> str:
    """[low, high] with `digits` decimals, rounded outwards (`rounded_out`)."""
    low, high = rounded_out(low, digits, False), rounded_out(high, digits, True)
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def small_sample_note(sizes: dict[str, int]) -> str | None:
    """A warning naming the splits with fewer than SMALL_SAMPLE examples, or None."""
    small = {name: n for name, n in sizes.items() if n < SMALL_SAMPLE}
    if not small:
        return None
    listed = ", ".join(f"{name} n = {n}" for name, n in small.items())
    return (
        f"**Small sample** ({listed}): with fewer than {SMALL_SAMPLE} examples the bootstrap "
        "interval understates the uncertainty (all of 10 right gives [1.000, 1.000]), and a "
        "difference of a few examples is noise. Evaluate on more examples before relying on it."
    )


def edge_interval(n: int | None, accuracy: float | None) -> list[float] | None:
    """The exact binomial (Clopper-Pearson) 95% interval of an accuracy of all n right or
    all wrong, where the bootstrap's has no width; None for any other accuracy."""
    if not n or accuracy not in (0.0, 1.0):
        return None
    bound = 0.025 ** (1 / n)  # with all n one way
    return [bound, 1.0] if accuracy else [0.0, 1 - bound]


def edge_intervals(n: int | None, accuracy: float | None) -> dict[str, list[float] | None]:
    """95% intervals of a split scored all right or all wrong, for which the bootstrap's
    have no width ({} for any other): accuracy's exact one; weighted F1's from it, as
    2 x accuracy - 1 <= weighted F1 <= 2 x accuracy (each error costs a label's F1 at most
    its share twice); macro F1 none (None): a rare label's errors, unseen, can pull it
    anywhere."""
    exact = edge_interval(n, accuracy)
    if exact is None:
        return {}
    low, high = exact
    return {
        "accuracy": exact,
        "f1_weighted": [max(0.0, 2 * low - 1), min(1.0, 2 * high)],
        "f1_macro": None,
    }


def split_notes(results: dict[str, dict[str, Any]]) -> list[str]:
    """The small-sample and edge notes of evaluated splits (name -> its metrics), as the
    console, a run's report and a sweep's report give them."""
    sizes = {name: r["n"] for name, r in results.items()}
    edges = {name: (r["n"], r["accuracy"]) for name, r in results.items()}
    return [note for note in (small_sample_note(sizes), boundary_note(edges)) if note]


def _edge_lines(scores: dict[str, tuple[int, float]]) -> list[str]:
    """'name: all of n right, accuracy [low, high]' for each split all right or all wrong."""
    return [
        f"{name}: {'all' if accuracy else 'none'} of {n} right, accuracy {format_interval(*exact)}"
        for name, (n, accuracy) in scores.items()
        if (exact := edge_interval(n, accuracy))
    ]


def boundary_note(scores: dict[str, tuple[int, float]]) -> str | None:
    """A warning naming the splits (name -> (n, accuracy)) scored all right or all wrong:
    no resample can leave 100%, so the bootstrap interval has no width; the exact binomial
    bound says how far the true accuracy may still be. A small split gets it too, beside
    the small-sample note, which does not say how wide the interval should be."""
    if not (lines := _edge_lines(scores)):
        return None
    return (
        "**Interval at the edge**: a bootstrap interval cannot leave 100% (or 0%), so a split "
        "scored all right gets [1.000, 1.000] whatever its size. Exact binomial "
        "(Clopper-Pearson) 95% intervals: " + "; ".join(lines) + ". The F1 intervals shown "
        "beside them are as narrow: weighted F1 lies between 2 x accuracy - 1 and 2 x accuracy, "
        "macro F1 has no such bound (a rare label's errors may go unseen)."
    )


def seed_edge_note(scores: dict[str, tuple[int, float]]) -> str | None:
    """boundary_note for seeds of a row shown as a mean over seeds: the interval of the mean
    has width from the other seeds, but none from a seed scored all right or all wrong."""
    if not (lines := _edge_lines(scores)):
        return None
    return (
        "**Seed at the edge**: no resample of a seed's test examples moves an accuracy of "
        "100% (or 0%), so such a seed adds no width to the interval of its row's mean, and "
        "that interval (of F1 too) is narrower than it should be. Exact binomial "
        "(Clopper-Pearson) 95% intervals of those seeds: " + "; ".join(lines) + "."
    )


def per_class_edge_note(cm: list[list[int]], labels: list[str]) -> str | None:
    """A warning naming each label's precision or recall that is all right or all wrong
    (rows of `cm` true, columns predicted), with its exact binomial 95% interval: as for a
    split, the bootstrap gives such a rate an interval of no width."""
    cm = np.asarray(cm)
    lines = []
    for i, label in enumerate(labels):
        right = int(cm[i, i])
        for rate, n in (("precision", int(cm[:, i].sum())), ("recall", int(cm[i].sum()))):
            if n and right in (0, n):
                bound = 0.025 ** (1 / n)  # Clopper-Pearson 95%, with all n one way
                interval = format_interval(bound, 1.0) if right else format_interval(0.0, 1 - bound)
                lines.append(f"{label} {rate} {right} of {n}, {interval}")
    if not lines:
        return None
    return (
        "**Per-class rates at the edge**: a bootstrap interval cannot leave 100% (or 0%), so "
        "these show one of no width. Exact binomial (Clopper-Pearson) 95% intervals: "
        + "; ".join(lines)
        + "."
    )
