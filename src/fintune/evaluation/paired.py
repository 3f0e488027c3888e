"""Is a difference between two models real? Paired tests on the same test examples.

Both models are scored on identical resamples of the examples (paired bootstrap), so
what they share cancels and only their disagreements count. Several seeds form blocks:
each block pairs the two models' runs of one seed, a replicate resamples within every
block, and the quantity is the mean over seeds of the per-seed metric. McNemar's exact
test is the classic check for accuracy: only the examples the two models disagree on.
"""

from __future__ import annotations

from math import comb

import numpy as np

from fintune.evaluation.metrics import bootstrap_confusions, confusion, metrics_from_confusion

Block = tuple[np.ndarray, np.ndarray]  # (y_true, y_pred) of one run


def _mean_over_blocks(per_block: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.mean([b[name] for b in per_block], axis=0) for name in per_block[0]}


def seed_mean_ci(
    blocks: list[Block], k: int, samples: int = 1000, seed: int = 0
) -> dict[str, list[float]]:
    """95% bootstrap interval of the mean over runs (seeds) of each metric."""
    rng = np.random.default_rng(seed)
    replicates = _mean_over_blocks(
        [
            metrics_from_confusion(bootstrap_confusions(y, [p], k, samples, rng)[0])
            for y, p in blocks
        ]
    )
    return {
        name: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]
        for name, v in replicates.items()
    }


def paired_bootstrap(
    baseline: list[Block],
    candidate: list[Block],
    k: int,
    samples: int = 2000,
    seed: int = 0,
) -> dict[str, dict[str, float | list[float] | str]]:
    """Difference candidate - baseline of every metric, with its 95% interval and a verdict.

    baseline[i] and candidate[i] must hold the same examples (same y_true, same order).
    """
    if len(baseline) != len(candidate) or not baseline:
        raise ValueError("need one baseline block per candidate block")
    rng = np.random.default_rng(seed)
    base_reps, cand_reps, base_point, cand_point = [], [], [], []
    for (y_b, p_b), (y_c, p_c) in zip(baseline, candidate, strict=True):
        if not np.array_equal(y_b, y_c):
            raise ValueError("paired runs must be scored on the same test examples")
        base_cm, cand_cm = bootstrap_confusions(y_b, [p_b, p_c], k, samples, rng)
        base_reps.append(metrics_from_confusion(base_cm))
        cand_reps.append(metrics_from_confusion(cand_cm))
        base_point.append(metrics_from_confusion(confusion(y_b, p_b, k)))
        cand_point.append(metrics_from_confusion(confusion(y_c, p_c, k)))
    base_reps, cand_reps = _mean_over_blocks(base_reps), _mean_over_blocks(cand_reps)
    base_point, cand_point = _mean_over_blocks(base_point), _mean_over_blocks(cand_point)
    out: dict[str, dict[str, float | list[float] | str]] = {}
    for name in base_reps:
        diff = cand_reps[name] - base_reps[name]
        low, high = float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))
        out[name] = {
            "difference": float(cand_point[name] - base_point[name]),
            "ci95": [low, high],
            "verdict": verdict(low, high),
        }
    return out


def verdict(low: float, high: float) -> str:
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "within noise"


def mcnemar_exact(baseline_correct: np.ndarray, candidate_correct: np.ndarray) -> dict:
    """Two-sided exact McNemar test: a binomial test on the discordant pairs."""
    base = np.asarray(baseline_correct, dtype=bool)
    cand = np.asarray(candidate_correct, dtype=bool)
    only_base = int((base & ~cand).sum())
    only_cand = int((~base & cand).sum())
    n = only_base + only_cand
    if n == 0:
        p = 1.0
    else:
        tail = sum(comb(n, i) for i in range(min(only_base, only_cand) + 1)) / 2**n
        p = min(1.0, 2 * tail)
    return {"only_baseline_correct": only_base, "only_candidate_correct": only_cand, "p": p}
