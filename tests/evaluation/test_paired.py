"""Paired tests checked against independent computations on synthetic predictions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, f1_score

from fintune.evaluation import paired
from fintune.evaluation.metrics import bootstrap_ci
from fintune.evaluation.paired import (
    exact_paired_test,
    format_bound,
    format_difference,
    format_p,
    paired_bootstrap,
    randomization_test,
    seed_mean_ci,
    verdict,
)


def synthetic(n: int, k: int, accuracy: float, seed: int, y=None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n) if y is None else y
    wrong = rng.random(n) > accuracy
    pred = np.where(wrong, (y + rng.integers(1, k, n)) % k, y)
    return y, pred


def naive_paired_ci(y, base, cand, metric, samples, seed):
    """Resample indices one replicate at a time and score with scikit-learn."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(samples):
        i = rng.integers(0, len(y), len(y))
        diffs.append(metric(y[i], cand[i]) - metric(y[i], base[i]))
    return np.percentile(diffs, [2.5, 97.5])


def accuracy(y, p):
    return float(np.mean(y == p))


def macro_f1(y, p):
    return f1_score(y, p, average="macro", labels=np.unique(np.concatenate([y, p])))


@pytest.mark.parametrize(("metric", "name"), [(accuracy, "accuracy"), (macro_f1, "f1_macro")])
def test_paired_bootstrap_matches_a_naive_resampling(metric, name):
    y, base = synthetic(600, 3, 0.80, seed=1)
    _, cand = synthetic(600, 3, 0.86, seed=2, y=y)
    ours = paired_bootstrap([(y, base)], [(y, cand)], 3, samples=3000, seed=0)[name]
    low, high = naive_paired_ci(y, base, cand, metric, 1500, seed=5)
    assert ours["difference"] == pytest.approx(metric(y, cand) - metric(y, base))
    assert ours["ci95"][0] == pytest.approx(low, abs=0.01)
    assert ours["ci95"][1] == pytest.approx(high, abs=0.01)


def test_verdicts_on_clear_and_tiny_differences():
    y, base = synthetic(1000, 3, 0.70, seed=3)
    _, much_better = synthetic(1000, 3, 0.90, seed=4, y=y)
    clear = paired_bootstrap([(y, base)], [(y, much_better)], 3, samples=1000)
    assert clear["accuracy"]["verdict"] == "better"
    reverse = paired_bootstrap([(y, much_better)], [(y, base)], 3, samples=1000)
    assert reverse["accuracy"]["verdict"] == "worse"
    # one example of 250 flipped: the "+0.4 points on 250 examples" of the lab notebooks
    y, base = synthetic(250, 3, 0.80, seed=6)
    nudged = base.copy()
    flip = np.flatnonzero(base != y)[0]
    nudged[flip] = y[flip]
    tiny = paired_bootstrap([(y, base)], [(y, nudged)], 3, samples=1000)["accuracy"]
    assert tiny["difference"] == pytest.approx(0.004)
    assert tiny["verdict"] == "within noise"
    same = paired_bootstrap([(y, base)], [(y, base)], 3, samples=200)["accuracy"]
    assert same["difference"] == 0 and same["ci95"] == [0.0, 0.0]
    assert same["verdict"] == "within noise"


@pytest.mark.parametrize(("fixed", "expected"), [(4, "within noise"), (30, "better")])
def test_accuracy_is_called_better_only_when_mcnemar_agrees(fixed, expected):
    """Four fixed errors and nothing else: the percentile interval lies above 0, but four
    discordant examples all one way have exact p = 0.125."""
    y, base = synthetic(1000, 3, 0.80, seed=8)
    cand = base.copy()
    wrong = np.flatnonzero(base != y)[:fixed]
    cand[wrong] = y[wrong]
    result = paired_bootstrap([(y, base)], [(y, cand)], 3, samples=2000)["accuracy"]
    assert result["ci95"][0] > 0  # the bootstrap alone would say "better"
    assert result["exact_p"] == pytest.approx(binomtest(0, fixed).pvalue)
    assert result["verdict"] == expected


def test_seeds_are_blocks_and_the_difference_is_the_mean_over_seeds():
    y, _ = synthetic(400, 3, 1.0, seed=7)
    base = [synthetic(400, 3, a, seed=s, y=y) for a, s in ((0.8, 8), (0.82, 9))]
    cand = [synthetic(400, 3, a, seed=s, y=y) for a, s in ((0.85, 10), (0.81, 11))]
    result = paired_bootstrap(base, cand, 3, samples=500)["accuracy"]
    expected = np.mean(
        [accuracy_score(*c) - accuracy_score(*b) for b, c in zip(base, cand, strict=True)]
    )
    assert result["difference"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="same test examples"):
        paired_bootstrap([base[0]], [(y[::-1], cand[0][1])], 3)


def test_seed_mean_ci_covers_the_mean_like_a_naive_bootstrap():
    blocks = [synthetic(500, 3, a, seed=s) for a, s in ((0.8, 12), (0.84, 13), (0.78, 14))]
    ours = seed_mean_ci(blocks, 3, samples=3000, seed=0)["accuracy"]
    rng = np.random.default_rng(1)
    means = []
    for _ in range(3000):
        scores = []
        for y, p in blocks:
            i = rng.integers(0, len(y), len(y))
            scores.append(accuracy(y[i], p[i]))
        means.append(np.mean(scores))
    low, high = np.percentile(means, [2.5, 97.5])
    assert ours[0] == pytest.approx(low, abs=0.006) and ours[1] == pytest.approx(high, abs=0.006)


def test_seeds_on_one_test_set_share_its_resamples():
    y, p = synthetic(500, 3, 0.82, seed=15)
    one = bootstrap_ci(y, p, 3, samples=2000, seed=0)
    same_thrice = seed_mean_ci([(y, p)] * 3, 3, samples=2000, seed=0)
    assert same_thrice == {m: one[m] for m in same_thrice}  # the mean of one run, its interval

    blocks = [synthetic(500, 3, a, seed=s, y=y) for a, s in ((0.8, 16), (0.84, 17), (0.78, 18))]
    ours = seed_mean_ci(blocks, 3, samples=3000, seed=0)["accuracy"]
    rng = np.random.default_rng(2)
    means = []
    for _ in range(3000):
        i = rng.integers(0, len(y), len(y))  # one resample of the shared examples
        means.append(np.mean([accuracy(y[i], pred[i]) for _, pred in blocks]))
    low, high = np.percentile(means, [2.5, 97.5])
    assert ours[0] == pytest.approx(low, abs=0.006) and ours[1] == pytest.approx(high, abs=0.006)
    # the same predictions on three different test sets: three draws of luck, which average
    elsewhere = seed_mean_ci([(y, p)] * 3, 3, samples=2000, seed=0, test_sets=["a", "b", "c"])
    width = one["accuracy"][1] - one["accuracy"][0]
    assert elsewhere["accuracy"][1] - elsewhere["accuracy"][0] < 0.7 * width


def test_paired_seeds_on_one_test_set_match_a_naive_joint_resampling():
    y, _ = synthetic(400, 3, 1.0, seed=19)
    base = [synthetic(400, 3, a, seed=s, y=y) for a, s in ((0.8, 20), (0.82, 21))]
    cand = [synthetic(400, 3, a, seed=s, y=y) for a, s in ((0.85, 22), (0.83, 23))]
    ours = paired_bootstrap(base, cand, 3, samples=3000, seed=0)["accuracy"]["ci95"]
    rng = np.random.default_rng(3)
    diffs = []
    for _ in range(3000):
        i = rng.integers(0, len(y), len(y))
        diffs.append(
            np.mean(
                [
                    accuracy(y[i], c[i]) - accuracy(y[i], b[i])
                    for (_, b), (_, c) in zip(base, cand, strict=True)
                ]
            )
        )
    low, high = np.percentile(diffs, [2.5, 97.5])
    assert ours[0] == pytest.approx(low, abs=0.006) and ours[1] == pytest.approx(high, abs=0.006)
    with pytest.raises(ValueError, match="different labels"):
        seed_mean_ci([base[0], (y[::-1], y)], 3, test_sets=["t", "t"])


@pytest.mark.parametrize(
    ("only_base", "only_cand", "both"),
    [(10, 25, 100), (7, 7, 50), (0, 9, 30), (0, 0, 40), (40, 12, 300)],
)
def test_one_seed_is_mcnemars_exact_binomial_test(only_base, only_cand, both):
    base = np.array([1] * only_base + [0] * only_cand + [1] * both, dtype=bool)
    cand = np.array([0] * only_base + [1] * only_cand + [1] * both, dtype=bool)
    y = np.ones(len(base), dtype=int)  # correct = predicted 1
    result = exact_paired_test([(y, base.astype(int))], [(y, cand.astype(int))])
    assert (result["baseline_ahead"], result["candidate_ahead"]) == (only_base, only_cand)
    n = only_base + only_cand
    expected = binomtest(only_cand, n, 0.5).pvalue if n else 1.0
    assert result["p"] == pytest.approx(expected)


def test_verdict_rules():
    assert verdict(0.001, 0.02) == "better"
    assert verdict(-0.02, -0.001) == "worse"
    assert verdict(-0.01, 0.01) == "within noise"


def brute_force_sign_flip_p(scores: np.ndarray) -> float:
    """Every sign flip of the nonzero per-example scores, enumerated."""
    nonzero = scores[scores != 0]
    signs = np.array(list(itertools.product((-1, 1), repeat=len(nonzero))))
    totals = signs @ nonzero
    return float(np.mean(np.abs(totals) >= abs(nonzero.sum()) - 1e-9))


def test_seeds_on_one_test_set_are_not_extra_evidence():
    """Five fixed errors: p = 0.0625 with one seed, and the same with the run repeated as
    three seeds (pooling the seeds' predictions would give p = 6e-5 and call it better)."""
    y, base = synthetic(300, 3, 0.8, seed=3)
    cand = base.copy()
    wrong = np.flatnonzero(base != y)[:5]
    cand[wrong] = y[wrong]
    one = paired_bootstrap([(y, base)], [(y, cand)], 3, samples=500)["accuracy"]
    three = paired_bootstrap([(y, base)] * 3, [(y, cand)] * 3, 3, samples=500)["accuracy"]
    assert one["exact_p"] == three["exact_p"] == pytest.approx(0.0625)
    assert one["verdict"] == three["verdict"] == "within noise"


def test_several_seeds_match_an_enumeration_of_sign_flips():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 40)
    base, cand = [], []
    for _ in range(3):  # seeds on one test set, each disagreeing on a few examples
        b, c = y.copy(), y.copy()
        b[rng.choice(40, 5, replace=False)] = (y[0] + 1) % 3
        c[rng.choice(40, 4, replace=False)] = (y[0] + 1) % 3
        base.append((y, b))
        cand.append((y, c))
    z = rng.integers(0, 3, 12)  # a second test set, one seed
    b, c = z.copy(), z.copy()
    b[[0, 1, 2]] = (z[[0, 1, 2]] + 1) % 3
    c[[5]] = (z[5] + 1) % 3
    base.append((z, b))
    cand.append((z, c))
    result = exact_paired_test(base, cand, test_sets=["a", "a", "a", "z"])
    seeds = [
        (c == y).astype(int) - (b == y) for (_, b), (_, c) in zip(base[:3], cand[:3], strict=True)
    ]
    per_example = np.concatenate(
        [np.mean(seeds, 0), (cand[3][1] == z).astype(int) - (base[3][1] == z)]
    )
    assert 0 < np.count_nonzero(per_example) <= 20
    assert result["p"] == pytest.approx(brute_force_sign_flip_p(per_example))
    assert result["candidate_ahead"] == int((per_example > 0).sum())
    assert result["baseline_ahead"] == int((per_example < 0).sum())


def test_many_unequal_seed_counts_use_an_fft_with_the_same_p(monkeypatch):
    import fintune.evaluation.paired as paired

    rng = np.random.default_rng(1)
    base, cand, sets = [], [], []
    for name, seeds in (("a", 3), ("b", 4)):  # lcm 12: scores up to 12 per example
        y = rng.integers(0, 3, 300)
        for _ in range(seeds):
            base.append((y, np.where(rng.random(300) < 0.2, (y + 1) % 3, y)))
            cand.append((y, np.where(rng.random(300) < 0.18, (y + 1) % 3, y)))
            sets.append(name)
    monkeypatch.setattr(paired, "DIRECT_CONVOLUTION_MAX", 10**12)
    direct = exact_paired_test(base, cand, sets)["p"]
    monkeypatch.setattr(paired, "DIRECT_CONVOLUTION_MAX", 0)
    assert exact_paired_test(base, cand, sets)["p"] == pytest.approx(direct, rel=1e-9)
    assert 1e-4 < direct < 0.9  # a p-value worth comparing


def test_better_needs_the_exact_test_to_favour_the_candidate_too():
    """A 10-example test set the candidate gets all right and a 1,000-example one where it
    loses 30: the mean over seeds of accuracy favours it, the examples favour the baseline."""
    small, large = np.zeros(10, dtype=int), np.zeros(1000, dtype=int)
    base_large, cand_large = large.copy(), large.copy()
    cand_large[:30] = 1
    baseline = [(small, np.ones(10, dtype=int)), (large, base_large)]
    candidate = [(small, small.copy()), (large, cand_large)]
    result = paired_bootstrap(baseline, candidate, 2, samples=500, test_sets=["s", "l"])
    accuracy = result["accuracy"]
    assert accuracy["ci95"][0] > 0  # the bootstrap of the mean over seeds says better
    assert accuracy["exact_p"] < 0.05 and accuracy["baseline_ahead"] == 30
    assert accuracy["verdict"] == "within noise"


def test_the_randomization_test_matches_an_enumeration_of_every_swap():
    """10 examples the two models label differently: all 2^10 ways of trading their
    predictions, scored with scikit-learn, give the exact permutation p."""
    y, base = synthetic(120, 3, 0.75, seed=12)
    cand = base.copy()
    wrong = np.flatnonzero(base != y)[:10]
    cand[wrong[:6]] = y[wrong[:6]]  # fixed
    cand[wrong[6:]] = 3 - y[wrong[6:]] - base[wrong[6:]]  # the third label: still wrong
    changed = np.flatnonzero(cand != base)
    observed = macro_f1(y, cand) - macro_f1(y, base)
    totals = []
    for swap in itertools.product((False, True), repeat=len(changed)):
        b, c = base.copy(), cand.copy()
        idx = changed[list(swap)]
        b[idx], c[idx] = cand[idx], base[idx]
        totals.append(macro_f1(y, c) - macro_f1(y, b))
    exact = np.mean(np.abs(totals) >= abs(observed) - 1e-12)
    ours = randomization_test([(y, base)], [(y, cand)], 3, samples=20000, seed=0)["f1_macro"]
    assert 0.01 < exact < 0.9
    assert ours == pytest.approx(exact, abs=0.01)


def test_the_randomization_test_holds_a_bounded_chunk_of_shuffles_at_once(monkeypatch):
    """All shuffles at once took 3 bytes per shuffle and example the models disagree on
    (about 680 MB for 5,000 shuffles of 100,000 examples), after every cell had trained:
    the memory check before training counts the bootstrap's matrices, not these."""
    import tracemalloc

    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 60_000)
    base, cand = rng.integers(0, 3, 60_000), rng.integers(0, 3, 60_000)
    tracemalloc.start()
    p_whole = randomization_test([(y, base)], [(y, cand)], 3, samples=600, seed=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 30 * 2**20  # all at once: about 50 MB (600 x 40,000 x 2 bytes, and more)
    # chunks of any size draw the same kind of shuffles: a p of the same size
    monkeypatch.setattr(paired, "SWAP_CHUNK_BYTES", 7 * 40_000)
    p_chunked = randomization_test([(y, base)], [(y, cand)], 3, samples=600, seed=0)
    for name, p in p_whole.items():
        assert p_chunked[name] == pytest.approx(p, abs=0.1)


@pytest.mark.parametrize(("fixed", "expected"), [(4, "within noise"), (30, "better")])
def test_every_metric_is_called_better_only_when_a_test_on_the_examples_agrees(fixed, expected):
    """Four fixed errors: the F1 interval lies above 0, as accuracy's does, and p = 0.125
    for both; F1 was called better on that alone."""
    y, base = synthetic(1000, 3, 0.80, seed=8)
    cand = base.copy()
    wrong = np.flatnonzero(base != y)[:fixed]
    cand[wrong] = y[wrong]
    result = paired_bootstrap([(y, base)], [(y, cand)], 3, samples=2000)
    for name in ("f1_macro", "precision_weighted", "recall_macro"):
        assert result[name]["ci95"][0] > 0  # the bootstrap alone would say "better"
        assert result[name]["test"] == "randomization"
        assert result[name]["verdict"] == expected
    if fixed == 4:
        assert result["f1_macro"]["p"] == pytest.approx(0.125, abs=0.03)
    assert result["accuracy"]["p"] == result["accuracy"]["exact_p"]


def test_seeds_on_one_test_set_trade_predictions_together():
    y, base = synthetic(300, 3, 0.8, seed=3)
    cand = base.copy()
    wrong = np.flatnonzero(base != y)[:6]
    cand[wrong] = y[wrong]
    one = randomization_test([(y, base)], [(y, cand)], 3, samples=1000)
    three = randomization_test([(y, base)] * 3, [(y, cand)] * 3, 3, samples=1000)
    assert one == three


def test_an_exact_p_too_small_for_a_float_is_shown_as_a_bound_not_as_0():
    """3,100 examples only the candidate gets right against 500: every term of the exact
    test underflows, and the report showed p as "0 (3100 vs 500)"."""
    y = np.zeros(5000, dtype=int)
    baseline, candidate = np.zeros(5000, dtype=int), np.zeros(5000, dtype=int)
    baseline[:3100] = 1
    candidate[3100:3600] = 1
    result = exact_paired_test([(y, baseline)], [(y, candidate)])
    assert (result["candidate_ahead"], result["baseline_ahead"]) == (3100, 500)
    assert format_p(result["p"]) == "< 1e-15"
    assert format_p(2e-15) == "2e-15"


def test_an_exact_p_through_the_fft_is_bounded_by_its_rounding(monkeypatch):
    """Seeds of unequal counts (1 to 7 on five test sets): the FFT's tail sums rounding,
    so a p of 6.7e-21 (direct convolution) came out as 1.005e-15 and showed as "1e-15"."""
    rng = np.random.default_rng(3)
    baseline, candidate, test_sets = [], [], []
    for group, seeds in enumerate([1, 2, 3, 5, 7]):
        y = rng.integers(0, 2, 300)
        for _ in range(seeds):
            baseline.append((y, np.where(rng.random(300) < 0.75, y, 1 - y)))
            candidate.append((y, np.where(rng.random(300) < 0.83, y, 1 - y)))
            test_sets.append(group)
    monkeypatch.setattr(paired, "DIRECT_CONVOLUTION_MAX", 10**12)
    direct = exact_paired_test(baseline, candidate, test_sets)
    monkeypatch.setattr(paired, "DIRECT_CONVOLUTION_MAX", 0)
    fft = exact_paired_test(baseline, candidate, test_sets)
    assert direct["p"] < 1e-18 and format_p(direct["p"], direct["p_floor"]) == "< 1e-15"
    assert format_p(fft["p"], fft["p_floor"]) == "< 1e-12"
    compared = paired_bootstrap(baseline, candidate, 2, 200, 0, test_sets)
    assert compared["accuracy"]["p_floor"] == paired.FFT_P_FLOOR


@pytest.mark.parametrize(
    ("p", "shown"),
    [
        (0.049983, "0.04998"),
        (0.0512, "0.0512"),
        (0.125, "0.125"),
        (0.0001234, "0.000123"),
        (0.0499999999, "< 0.05"),
        (1.0, "1"),
    ],
)
def test_a_p_value_is_never_rounded_across_the_verdicts_line(p, shown):
    assert format_p(p) == shown


@pytest.mark.parametrize(
    ("bound", "up", "shown"),
    [
        (0.0072, False, "+0.007"),
        (0.0072, True, "+0.008"),  # an upper bound rounds up: the interval never narrows
        (0.0004, False, "+0.0004"),  # "+0.000" beside "better" reads as touching 0
        (-0.0004, True, "-0.0004"),
        (-0.0004, False, "-0.001"),
        (0.00004, False, "+0.00004"),
        (0.0, True, "+0.000"),
        (-0.0125, False, "-0.013"),
        (-0.0125, True, "-0.012"),
        (0.02, True, "+0.020"),  # no hair of float error rounds it to +0.021
    ],
)
def test_an_interval_bound_is_never_rounded_to_0_nor_inwards(bound, up, shown):
    assert format_bound(bound, up) == shown


@pytest.mark.parametrize(
    ("difference", "low", "high", "shown"),
    [
        (0.0123, 0.0041, 0.0202, "+0.0123 [+0.004, +0.021]"),
        # Δ showed '+0.0000' beside 'better', its upper bound '+0.001' (found in review)
        (4e-05, 1.5e-05, 7e-05, "+0.00004 [+0.00001, +0.00007]"),
        (0.004, 0.0004, 0.0072, "+0.0040 [+0.0004, +0.0072]"),  # one number of decimals
        (-0.004, -0.0072, -0.0004, "-0.0040 [-0.0072, -0.0004]"),
        (0.0, -0.02, 0.02, "+0.0000 [-0.020, +0.020]"),
    ],
)
def test_a_difference_is_shown_with_the_decimals_its_interval_needs(difference, low, high, shown):
    from fintune.evaluation.paired import format_difference

    assert format_difference(difference, low, high) == shown


@pytest.mark.parametrize(
    "score",
    [
        lambda e: seed_mean_ci([(e, e)], 2),
        lambda e: paired_bootstrap([(e, e)], [(e, e)], 2),
    ],
)
def test_no_examples_is_refused_by_name_not_divided_by(score):
    with pytest.raises(ValueError, match="no examples to score"):
        score(np.array([], dtype=int))


def test_equal_means_over_seeds_differ_by_0_not_by_rounding():
    """Three seeds right on 10/20/30% of ten examples, against 30/20/10%: equal means, shown
    as '-5.55e-17 [-5.55e-17, +0.000]' as the means were summed in another order."""
    y = np.zeros(10, int)

    def right(m):
        p = np.ones(10, int)
        p[:m] = 0
        return p

    base = [(y, right(1)), (y, right(2)), (y, right(3))]
    cand = [(y, right(3)), (y, right(2)), (y, right(1))]
    result = paired_bootstrap(base, cand, 2, samples=1000)
    for name in ("accuracy", "f1_weighted"):
        r = result[name]
        assert r["difference"] == 0 and min(r["ci95"]) <= 0 <= max(r["ci95"])
        shown = format_difference(r["difference"], *r["ci95"])
        assert "e-1" not in shown and shown.startswith("+0.0000 ["), shown
