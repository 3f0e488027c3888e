"""Is a difference between two models real? Paired tests on the same test examples.

Both models are scored on identical resamples of the examples (paired bootstrap), so
what they share cancels and only their disagreements count. Several seeds form blocks:
each block pairs the two models' runs of one seed, and the quantity is the mean over seeds
of the per-seed metric. Blocks scored on the same test set share each resample too, since
the test set's luck is common to all of them; blocks on different test sets (a split that
varies with the seed) are resampled independently. McNemar's exact test is the classic
check for accuracy: only the examples the two models disagree on.
"""

from __future__ import annotations

from math import comb

import numpy as np

from fintune.evaluation.metrics import (
    bootstrap_confusions,
    confusion,
    metrics_from_confusion,
    present_classes,
)

Block = tuple[np.ndarray, np.ndarray]  # (y_true, y_pred) of one run


def _mean_over_blocks(per_block: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.mean([b[name] for b in per_block], axis=0) for name in per_block[0]}


def _replicates(
    blocks: list[tuple[np.ndarray, list[np.ndarray]]],
    test_sets: list | None,
    k: int,
    samples: int,
    rng: np.random.Generator,
) -> list[list[dict[str, np.ndarray]]]:
    """Bootstrap metrics of every prediction array of every (y_true, predictions) block.
    Blocks with the same test set (default: the same y_true) share their resamples."""
    keys = test_sets if test_sets is not None else [y.tobytes() for y, _ in blocks]
    if len(keys) != len(blocks):
        raise ValueError("need one test-set key per block")
    groups: dict = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    out: list = [None] * len(blocks)
    for members in groups.values():
        y = blocks[members[0]][0]
        if any(not np.array_equal(blocks[i][0], y) for i in members):
            raise ValueError("blocks named as one test set hold different labels")
        predictions = [p for i in members for p in blocks[i][1]]
        classes = iter([present_classes(confusion(y, p, k)) for p in predictions])
        matrices = iter(bootstrap_confusions(y, predictions, k, samples, rng))
        for i in members:
            out[i] = [metrics_from_confusion(next(matrices), next(classes)) for _ in blocks[i][1]]
    return out


def seed_mean_ci(
    blocks: list[Block], k: int, samples: int = 1000, seed: int = 0, test_sets: list | None = None
) -> dict[str, list[float]]:
    """95% bootstrap interval of the mean over runs (seeds) of each metric. `test_sets`
    names each run's test set (say a hash of its texts); default: its y_true."""
    rng = np.random.default_rng(seed)
    per_run = _replicates([(y, [p]) for y, p in blocks], test_sets, k, samples, rng)
    replicates = _mean_over_blocks([r[0] for r in per_run])
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
    test_sets: list | None = None,
) -> dict[str, dict[str, float | list[float] | str]]:
    """Difference candidate - baseline of every metric, with its 95% interval and a verdict.

    baseline[i] and candidate[i] must hold the same examples (same y_true, same order);
    `test_sets[i]` names that pair's test set, as in `seed_mean_ci`.
    """
    if len(baseline) != len(candidate) or not baseline:
        raise ValueError("need one baseline block per candidate block")
    for (y_b, _), (y_c, _) in zip(baseline, candidate, strict=True):
        if not np.array_equal(y_b, y_c):
            raise ValueError("paired runs must be scored on the same test examples")
    rng = np.random.default_rng(seed)
    pairs = [(y, [p_b, p_c]) for (y, p_b), (_, p_c) in zip(baseline, candidate, strict=True)]
    reps = _replicates(pairs, test_sets, k, samples, rng)
    base_reps = _mean_over_blocks([r[0] for r in reps])
    cand_reps = _mean_over_blocks([r[1] for r in reps])
    base_point = _mean_over_blocks(
        [metrics_from_confusion(confusion(y, p, k)) for y, p in baseline]
    )
    cand_point = _mean_over_blocks(
        [metrics_from_confusion(confusion(y, p, k)) for y, p in candidate]
    )
    out: dict[str, dict[str, float | list[float] | str]] = {}
    for name in base_reps:
        diff = cand_reps[name] - base_reps[name]
        low, high = float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))
        out[name] = {
            "difference": float(cand_point[name] - base_point[name]),
            "ci95": [low, high],
            "verdict": verdict(low, high),
        }
    # With a handful of disagreements the percentile interval is too narrow (four examples
    # all one way give an interval above 0, where p = 0.125): accuracy is called better or
    # worse only when McNemar's exact test agrees.
    mcnemar = mcnemar_exact(
        np.concatenate([y == p for y, p in baseline]),
        np.concatenate([y == p for y, p in candidate]),
    )
    out["accuracy"]["mcnemar_p"] = mcnemar["p"]
    if mcnemar["p"] >= 0.05:
        out["accuracy"]["verdict"] = "within noise"
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
