"""Is a difference between two models real? Paired tests on the same test examples.

Both models are scored on identical resamples of the examples (paired bootstrap), so
what they share cancels and only their disagreements count. Several seeds form blocks:
each block pairs the two models' runs of one seed, and the quantity is the mean over seeds
of the per-seed metric. Blocks scored on the same test set share each resample too, since
the test set's luck is common to all of them; blocks on different test sets (a split that
varies with the seed) are resampled independently. For accuracy an exact test counts only
the examples the two models disagree on: McNemar's test for one seed, and for several seeds
on one test set the same test on each example's correctness averaged over the seeds (three
seeds on the same examples are not three times the evidence). The other metrics get a
randomization test with the same structure: each example's two predictions trade places.
"""

from __future__ import annotations

from math import lcm

import numpy as np
from scipy.signal import fftconvolve
from scipy.stats import binom

from fintune.evaluation.metrics import (
    bootstrap_confusions,
    confusion,
    metrics_from_confusion,
    rounded_out,
)

Block = tuple[np.ndarray, np.ndarray]  # (y_true, y_pred) of one run
DIRECT_CONVOLUTION_MAX = 10**7  # larger exact-test convolutions go through an FFT
ALPHA = 0.05  # the level of every verdict
P_FLOOR = 1e-15  # smaller p-values are shown as below it (see format_p)
SWAP_CHUNK_BYTES = 4_000_000  # a randomization test's shuffles at once: ~12 MB
FFT_P_FLOOR = 1e-12  # the same through the FFT, whose tail sums hold ~2e-15 of rounding
# means over seeds summed in another order differ by rounding (two equal means: -5.55e-17);
# a real difference of metrics counted on under 10**12 examples is larger than this
ROUNDING = 1e-12


def _mean_over_blocks(per_block: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.mean([b[name] for b in per_block], axis=0) for name in per_block[0]}


def _test_set_groups(blocks: list, test_sets: list | None) -> list[list[int]]:
    """The blocks' indices grouped by test set: `test_sets` names each block's (default:
    its y_true). Blocks named as one test set must hold the same labels."""
    keys = test_sets if test_sets is not None else [y.tobytes() for y, _ in blocks]
    if len(keys) != len(blocks):
        raise ValueError("need one test-set key per block")
    groups: dict = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    for members in groups.values():
        if any(not np.array_equal(blocks[i][0], blocks[members[0]][0]) for i in members):
            raise ValueError("blocks named as one test set hold different labels")
    return list(groups.values())


def _replicates(
    blocks: list[tuple[np.ndarray, list[np.ndarray]]],
    test_sets: list | None,
    k: int,
    samples: int,
    rng: np.random.Generator,
) -> list[list[dict[str, np.ndarray]]]:
    """Bootstrap metrics of every prediction array of every (y_true, predictions) block.
    Blocks with the same test set (default: the same y_true) share their resamples."""
    out: list = [None] * len(blocks)
    for members in _test_set_groups(blocks, test_sets):
        y = blocks[members[0]][0]
        predictions = [p for i in members for p in blocks[i][1]]
        wholes = iter([confusion(y, p, k) for p in predictions])
        matrices = iter(bootstrap_confusions(y, predictions, k, samples, rng))
        for i in members:
            out[i] = [metrics_from_confusion(next(matrices), next(wholes)) for _ in blocks[i][1]]
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
        diff = _snapped(cand_reps[name] - base_reps[name])
        low, high = float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))
        out[name] = {
            "difference": float(_snapped(cand_point[name] - base_point[name])),
            "ci95": [low, high],
            "verdict": verdict(low, high),
        }
    # With a handful of disagreements the percentile interval is too narrow (four examples
    # all one way give an interval above 0, where p = 0.125): a metric is called better or
    # worse only when a test on the examples agrees, the exact test for accuracy and a
    # randomization test for the others.
    exact = exact_paired_test(baseline, candidate, test_sets)
    shuffled = randomization_test(baseline, candidate, k, samples, seed, test_sets)
    for name, result in out.items():
        if name == "accuracy":
            p, favours = exact["p"], exact["favours"]
            result.update(exact_p=p, test="exact", p_floor=exact["p_floor"])
        else:
            p, favours = shuffled[name], _favours(result["difference"])
            result.update(test="randomization", p_floor=P_FLOOR)
        result.update(
            p=p, baseline_ahead=exact["baseline_ahead"], candidate_ahead=exact["candidate_ahead"]
        )
        # (with test sets of different sizes the two weigh examples differently: both agree)
        agrees = {"better": "candidate", "worse": "baseline"}.get(result["verdict"])
        if p >= ALPHA or favours != agrees:
            result["verdict"] = "within noise"
    return out


def _snapped(difference: np.ndarray) -> np.ndarray:
    """Differences within rounding of 0 as 0: shown as '+0.000', not '-5.55e-17', and no
    verdict read from a bound of 1e-16."""
    return np.where(np.abs(difference) < ROUNDING, 0.0, difference)


def _favours(difference: float) -> str:
    return "candidate" if difference > 0 else "baseline" if difference < 0 else "neither"


def format_p(p: float, floor: float = P_FLOOR) -> str:
    """Three significant digits, or more where three would round across ALPHA
    (0.049983 is "0.04998", not "0.05" beside a verdict that needs p < 0.05). Below `floor`
    a p is a bound, not a figure: the exact test's terms underflow to 0 (3,100 vs 500
    examples gave p = 0), and on its FFT path (its result's `p_floor`) the tail sums
    rounding (1.7e-15 shown where the p was 1e-66)."""
    if p < floor:
        return f"< {floor:g}"
    for digits in range(3, 8):
        shown = f"{p:.{digits}g}"
        if (float(shown) < ALPHA) == (p < ALPHA):
            return shown
    return f"< {ALPHA:g}" if p < ALPHA else f"{p:.3g}"


def format_bound(bound: float, up: bool) -> str:
    """An interval's bound with its sign and three decimals, rounded outwards (`up` for an
    upper bound, `rounded_out`), or more decimals where three would show a bound that is
    not 0 as 0 ("+0.000" beside "better" reads as an interval touching 0)."""
    digits = _bound_digits(bound, up)
    return f"{bound:+.3g}" if digits is None else _signed(bound, digits, up)


def format_difference(difference: float, low: float, high: float) -> str:
    """'Δ [low, high]': both bounds as format_bound shows them, with the decimals the one
    needing more needs; Δ with four decimals, or as many as its bounds ('+0.0000' beside
    'better' hid a difference of 4e-05 whose interval was [+0.00001, +0.001])."""
    needed = (_bound_digits(low, False), _bound_digits(high, True))
    if None in needed:
        return f"{difference:+.3g} [{format_bound(low, False)}, {format_bound(high, True)}]"
    digits = max(needed)
    shown = f"[{_signed(low, digits, False)}, {_signed(high, digits, True)}]"
    return f"{difference:+.{max(4, digits)}f} {shown}"


def _signed(bound: float, digits: int, up: bool) -> str:
    return f"{rounded_out(bound, digits, up):+.{digits}f}"


def _bound_digits(bound: float, up: bool) -> int | None:
    """The fewest decimals, from three, that do not show a bound that is not 0 as 0."""
    for digits in range(3, 10):
        if bound == 0 or float(_signed(bound, digits, up)) != 0:
            return digits
    return None


def randomization_test(
    baseline: list[Block],
    candidate: list[Block],
    k: int,
    samples: int = 2000,
    seed: int = 0,
    test_sets: list | None = None,
) -> dict[str, float]:
    """Two-sided p of each metric's difference (mean over blocks), by approximate
    randomization: each example's two predictions trade places with probability 1/2, in
    every block of its test set at once (seeds on one test set are not extra evidence, as
    in the exact test), and p is the share of `samples` such shuffles whose difference is
    at least as far from 0 as the observed one, counting the observed itself."""
    rng = np.random.default_rng([seed, 1])  # apart from the bootstrap's stream
    observed = _mean_over_blocks(
        [
            _difference(confusion(y, c, k), confusion(y, b, k))
            for (y, b), (_, c) in zip(baseline, candidate, strict=True)
        ]
    )
    shuffled: list[dict[str, np.ndarray]] = []
    for members in _test_set_groups(baseline, test_sets):
        # a swap matters only where the two models label an example differently (in any
        # seed): one byte per such example and shuffle
        differ = np.unique(
            np.concatenate([np.flatnonzero(baseline[i][1] != candidate[i][1]) for i in members])
        )
        # in chunks of shuffles: all at once held 3 bytes per shuffle and example, 4 GB for
        # 2,000 shuffles of 700,000 examples, unseen by the memory check before training
        rows = max(1, SWAP_CHUNK_BYTES // max(1, len(differ)))
        parts: list[list[dict[str, np.ndarray]]] = [[] for _ in members]
        for start in range(0, samples, rows):
            size = (min(rows, samples - start), len(differ))
            swaps = rng.integers(0, 2, size=size, dtype=np.uint8).astype(bool)
            for part, i in zip(parts, members, strict=True):
                part.append(_swapped_difference(baseline[i], candidate[i][1], swaps, differ, k))
        shuffled += [{name: np.concatenate([c[name] for c in p]) for name in p[0]} for p in parts]
    spread = _mean_over_blocks(shuffled)
    return {
        name: float(
            (1 + np.sum(np.abs(spread[name]) >= abs(observed[name]) - 1e-12)) / (samples + 1)
        )
        for name in observed
    }


def _difference(candidate_cm: np.ndarray, baseline_cm: np.ndarray) -> dict[str, np.ndarray]:
    cand, base = metrics_from_confusion(candidate_cm), metrics_from_confusion(baseline_cm)
    return {name: cand[name] - base[name] for name in cand}


def _swapped_difference(
    block: Block, candidate: np.ndarray, swaps: np.ndarray, columns: np.ndarray, k: int
):
    """Metric differences of one block with the predictions traded where `swaps` holds
    (samples x the examples in `columns`). Only examples the two models label differently
    change a matrix."""
    y, baseline = block
    differ = np.flatnonzero(baseline != candidate)
    swapped = swaps[:, np.searchsorted(columns, differ)]
    base_cm, cand_cm = confusion(y, baseline, k).ravel(), confusion(y, candidate, k).ravel()
    moved = np.zeros((len(swaps), k * k))  # what the swaps move from baseline to candidate
    for cells, sign in (
        (y[differ] * k + baseline[differ], 1),
        (y[differ] * k + candidate[differ], -1),
    ):
        for cell in np.unique(cells):
            moved[:, cell] += sign * swapped[:, cells == cell].sum(axis=1)
    return _difference((cand_cm + moved).reshape(-1, k, k), (base_cm - moved).reshape(-1, k, k))


def verdict(low: float, high: float) -> str:
    """The bootstrap interval's verdict, before the test on the examples has its say."""
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "within noise"


def exact_paired_test(
    baseline: list[Block], candidate: list[Block], test_sets: list | None = None
) -> dict:
    """Two-sided exact test that two models are right equally often, example by example.

    Each example's score is candidate minus baseline correctness, averaged over the seeds
    (blocks) tested on its test set; examples of different test sets pool. Under the null
    hypothesis every score is as likely negative as positive, so the p-value is the share of
    the 2^n sign flips whose total is at least as far from 0 as the observed one, computed
    exactly. With one seed this is McNemar's exact test (a binomial test on the examples
    only one model gets right). `test_sets` as in `seed_mean_ci`.
    """
    groups = _test_set_groups(baseline, test_sets)
    scale = lcm(*(len(members) for members in groups))
    scores = []  # per example: scale x (mean candidate - mean baseline correctness), integers
    for members in groups:
        total = sum(
            (candidate[i][1] == candidate[i][0]).astype(int)
            - (baseline[i][1] == baseline[i][0]).astype(int)
            for i in members
        )
        scores.append(np.asarray(total) * (scale // len(members)))
    score = np.concatenate(scores)
    observed = int(score.sum())
    # Distribution of the flipped total: each magnitude a, held by m examples, adds
    # a * (2X - m) with X ~ Binomial(m, 1/2); the magnitudes are independent.
    distribution, floor = np.ones(1), P_FLOOR
    magnitudes, counts = np.unique(np.abs(score[score != 0]), return_counts=True)
    for a, m in zip(magnitudes.tolist(), counts.tolist(), strict=True):
        kernel = np.zeros(2 * a * m + 1)
        kernel[:: 2 * a] = binom.pmf(np.arange(m + 1), m, 0.5)
        if len(distribution) * len(kernel) <= DIRECT_CONVOLUTION_MAX:
            distribution = np.convolve(distribution, kernel)
        else:  # several seeds on a large test set: FFT (see FFT_P_FLOOR), not minutes
            distribution = np.clip(fftconvolve(distribution, kernel), 0, None)
            floor = FFT_P_FLOOR
    reach = (len(distribution) - 1) // 2
    totals = np.arange(-reach, reach + 1)
    p = float(distribution[np.abs(totals) >= abs(observed)].sum())
    return {
        "baseline_ahead": int((score < 0).sum()),
        "candidate_ahead": int((score > 0).sum()),
        "favours": "candidate" if observed > 0 else "baseline" if observed < 0 else "neither",
        "p": min(1.0, p),
        "p_floor": floor,  # below it, p is only known to be smaller (format_p)
    }
