import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from fintune.evaluation.metrics import (
    bootstrap_ci,
    boundary_note,
    evaluate_predictions,
    format_interval,
    metrics_from_confusion,
    per_class_edge_note,
    small_sample_note,
)


def _random_predictions(n: int, k: int, seed: int, skill: float = 0.7):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    p = np.where(rng.random(n) < skill, y, rng.integers(0, k, n))
    return y, p


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [2, 3, 7])
def test_point_metrics_match_scikit_learn(seed, k):
    y, p = _random_predictions(300, k, seed)
    p[p == k - 1] = 0  # a label that is never predicted
    result = evaluate_predictions(y, p, [f"c{i}" for i in range(k)], samples=100)
    assert result["accuracy"] == pytest.approx(accuracy_score(y, p))
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y, p, average=average, zero_division=0
        )
        assert result[f"precision_{average}"] == pytest.approx(precision)
        assert result[f"recall_{average}"] == pytest.approx(recall)
        assert result[f"f1_{average}"] == pytest.approx(f1)
    assert result["n"] == 300
    assert np.asarray(result["confusion_matrix"]).sum() == 300


def test_a_macro_average_covers_the_labels_true_or_predicted_as_the_readme_says():
    """Gold lacks label c, which the model predicts once: c counts (F1 0), as in
    scikit-learn, which the README said only of labels occurring in the split; d, in
    neither, does not."""
    from pathlib import Path

    y = np.array([0, 0, 1, 1, 1])
    p = np.array([0, 2, 1, 1, 1])
    result = evaluate_predictions(y, p, ["a", "b", "c", "d"], samples=100)
    f1 = f1_score(y, p, average="macro", zero_division=0)
    assert result["f1_macro"] == pytest.approx(f1) == pytest.approx((2 / 3 + 1 + 0) / 3)
    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text().split())
    assert "a macro average covers the labels that are true or predicted in the split" in readme


def test_bootstrap_matches_a_plain_resampling_loop():
    """The weighted-confusion shortcut equals resampling indices and recomputing."""
    y, p = _random_predictions(200, 3, 5)
    fast = bootstrap_ci(y, p, 3, samples=2000, seed=11)
    rng = np.random.default_rng(99)
    accs, f1s = [], []
    for _ in range(2000):
        idx = rng.integers(0, 200, 200)
        accs.append(accuracy_score(y[idx], p[idx]))
        f1s.append(
            precision_recall_fscore_support(y[idx], p[idx], average="macro", zero_division=0)[2]
        )
    for name, values in (("accuracy", accs), ("f1_macro", f1s)):
        slow = np.percentile(values, [2.5, 97.5])
        assert fast[name][0] == pytest.approx(slow[0], abs=0.015)
        assert fast[name][1] == pytest.approx(slow[1], abs=0.015)


def test_interval_narrows_with_more_examples():
    small = bootstrap_ci(*_random_predictions(250, 3, 0), 3)["accuracy"]
    large = bootstrap_ci(*_random_predictions(5000, 3, 0), 3)["accuracy"]
    assert (large[1] - large[0]) < (small[1] - small[0]) / 3
    # 250 examples at ~0.8 accuracy: about +-5 points, so a +0.4 point change is noise
    assert small[1] - small[0] > 0.08


def test_same_seed_same_interval_different_seed_different():
    y, p = _random_predictions(300, 3, 3)
    assert bootstrap_ci(y, p, 3, seed=1) == bootstrap_ci(y, p, 3, seed=1)
    assert bootstrap_ci(y, p, 3, seed=1) != bootstrap_ci(y, p, 3, seed=2)


def test_a_rare_class_stays_in_the_macro_average_of_every_resample():
    """A class with one (misclassified) example drops out of many resamples; the macro
    average still covers it, as in the full sample, and matches a plain loop that fixes
    scikit-learn's labels to the full sample's."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    p = np.where(rng.random(300) < 0.8, y, 1 - y)
    y[0], p[0] = 2, 1
    fast = bootstrap_ci(y, p, 3, samples=2000, seed=11)["f1_macro"]
    f1s = []
    for _ in range(2000):
        idx = rng.integers(0, 300, 300)
        f1s.append(f1_score(y[idx], p[idx], labels=[0, 1, 2], average="macro", zero_division=0))
    slow = np.percentile(f1s, [2.5, 97.5])
    assert fast == pytest.approx(list(slow), abs=0.015)
    point = evaluate_predictions(y, p, ["neg", "pos", "rare"], samples=100)["f1_macro"]
    assert fast[0] < point < fast[1] < point + 0.1  # not split in two by the rare class


def test_a_rare_class_a_resample_lacks_keeps_its_whole_sample_rates():
    """Counted as 0 where a resample lacks the 2-example class, a perfect classifier's
    macro F1 interval reached down to 0.67."""
    y = np.array([0] * 49 + [1] * 49 + [2] * 2)
    perfect = evaluate_predictions(y, y, ["a", "b", "c"], samples=2000)["ci95"]
    for name in ("precision_macro", "recall_macro", "f1_macro"):
        assert perfect[name] == [1.0, 1.0]
    p = y.copy()
    p[0] = 1
    one_error = evaluate_predictions(y, p, ["a", "b", "c"], samples=2000)
    assert 0.97 < one_error["ci95"]["f1_macro"][0] < one_error["f1_macro"] < 1.0


def test_per_class_holds_every_label_even_ones_named_like_averages():
    y, p = _random_predictions(200, 3, 7)
    labels = ["accuracy", "macro avg", "weighted avg"]
    per_class = evaluate_predictions(y, p, labels, samples=100)["per_class"]
    assert list(per_class) == labels
    precision, recall, f1, support = precision_recall_fscore_support(y, p, zero_division=0)
    for i, label in enumerate(labels):
        row = per_class[label]
        assert [row["precision"], row["recall"], row["f1-score"]] == pytest.approx(
            [precision[i], recall[i], f1[i]]
        )
        assert row["support"] == support[i]


def test_small_samples_are_named_and_30_is_not_small():
    assert small_sample_note({"validation": 30, "test": 967}) is None
    note = small_sample_note({"validation": 29, "test": 967})
    assert "validation n = 29" in note and "test" not in note
    # why the note exists: a percentile interval cannot reach outcomes the sample lacks
    y = np.zeros(10, dtype=int)
    assert bootstrap_ci(y, y, 2)["accuracy"] == [1.0, 1.0]


def test_per_class_intervals_match_a_plain_resampling_loop():
    y, p = _random_predictions(300, 3, 8)
    per_class = evaluate_predictions(y, p, ["a", "b", "c"], samples=2000, seed=3)["per_class"]
    rng = np.random.default_rng(5)
    rows = []
    for _ in range(2000):
        idx = rng.integers(0, 300, 300)
        rows.append(
            precision_recall_fscore_support(y[idx], p[idx], labels=[0, 1, 2], zero_division=0)[:3]
        )
    slow = np.percentile(np.array(rows), [2.5, 97.5], axis=0)  # (2, 3 metrics, 3 classes)
    for i, label in enumerate("abc"):
        for m, name in enumerate(("precision", "recall", "f1-score")):
            low, high = per_class[label]["ci95"][name]
            assert low <= per_class[label][name] <= high
            assert [low, high] == pytest.approx(slow[:, m, i], abs=0.02)


def test_a_resample_without_the_class_does_not_pull_its_interval_to_zero():
    """Class c is predicted once, correctly: precision 1 wherever it is defined."""
    y = np.array([0] * 60 + [1] * 38 + [2] * 2)
    p = y.copy()
    p[-1] = 0
    row = evaluate_predictions(y, p, ["a", "b", "c"])["per_class"]["c"]
    assert row["precision"] == 1.0 and row["ci95"]["precision"] == [1.0, 1.0]
    absent = evaluate_predictions(y[:98], p[:98], ["a", "b", "c"])["per_class"]["c"]
    assert absent["ci95"]["precision"] == [None, None]  # never predicted, never true


def test_an_interval_at_100_percent_gets_the_exact_binomial_bound():
    """200 of 200 right: the bootstrap says [1.000, 1.000] at any n."""
    from scipy.stats import binomtest

    y = np.zeros(200, dtype=int)
    assert bootstrap_ci(y, y, 2)["accuracy"] == [1.0, 1.0]
    note = boundary_note({"test": (200, 1.0), "validation": (40, 0.0), "other": (300, 0.99)})
    low = binomtest(200, 200).proportion_ci(method="exact").low
    high = binomtest(0, 40).proportion_ci(method="exact").high
    assert f"test: all of 200 right, accuracy {format_interval(low, 1.0)}" in note
    assert f"validation: none of 40 right, accuracy {format_interval(0.0, high)}" in note
    assert "other" not in note


def test_a_small_split_at_100_percent_gets_the_exact_binomial_bound_too():
    """24 of 24 right (the quick start's test split) showed [1.000, 1.000] and only the
    small-sample note, which says the interval is too narrow but not how wide it is, while
    the same report gave a label's 24 of 24 recall its exact interval."""
    from scipy.stats import binomtest

    note = boundary_note({"test": (24, 1.0), "validation": (10, 0.0), "other": (5, 0.6)})
    low = binomtest(24, 24).proportion_ci(method="exact").low
    high = binomtest(0, 10).proportion_ci(method="exact").high
    assert f"test: all of 24 right, accuracy {format_interval(low, 1.0)}" in note  # [0.857, 1]
    assert f"validation: none of 10 right, accuracy {format_interval(0.0, high)}" in note
    assert "other" not in note
    assert "all of 1 right, accuracy [0.025, 1.000]" in boundary_note({"test": (1, 1.0)})


def test_a_per_class_rate_at_0_or_100_percent_gets_the_exact_binomial_bound():
    """The quick-start report showed 'negative recall 1.0000 [1.000, 1.000]' (24 of 24) with
    no word that the interval has no width only because no resample can leave 100%."""
    from scipy.stats import binomtest

    # rows true, columns predicted: a 24 of 24 recall, b 20 of 20 precision, c never right
    cm = [[24, 0, 0], [3, 20, 1], [2, 0, 0]]
    note = per_class_edge_note(cm, ["a", "b", "c"])
    assert f"a recall 24 of 24, {format_interval(binomtest(24, 24).proportion_ci().low, 1)}" in note
    assert (
        f"b precision 20 of 20, {format_interval(binomtest(20, 20).proportion_ci().low, 1)}" in note
    )
    assert f"c recall 0 of 2, {format_interval(0.0, binomtest(0, 2).proportion_ci().high)}" in note
    assert "c precision 0 of 1, [0.000" in note
    assert "a precision" not in note and "b recall" not in note
    assert per_class_edge_note([[5, 1], [1, 5]], ["a", "b"]) is None
    assert "c precision" not in per_class_edge_note([[2, 0, 0], [0, 2, 0], [0, 1, 0]], "abc")


def test_the_mean_loss_gets_an_interval_from_the_same_resamples():
    """metrics.json's loss (what a sweep with `metric: loss` ranks) had no interval."""
    y, p = _random_predictions(300, 3, 6)
    losses = np.random.default_rng(2).exponential(0.7, 300)
    result = evaluate_predictions(
        y, p, ["a", "b", "c"], samples=2000, confidence=0.9, losses=losses
    )
    assert result["loss"] == pytest.approx(losses.mean())
    rng = np.random.default_rng(7)
    means = [losses[rng.integers(0, 300, 300)].mean() for _ in range(2000)]
    for key, level in (("ci95", 95), ("ci", 90)):
        tail = (100 - level) / 2
        assert result[key]["loss"] == pytest.approx(
            list(np.percentile(means, [tail, 100 - tail])), abs=0.01
        )
    assert "loss" not in evaluate_predictions(y, p, ["a", "b", "c"], samples=100)["ci95"]


def test_a_shown_interval_is_never_narrower_than_the_computed_one():
    """Bounds were rounded to nearest: 24 of 24 right, exact lower bound 0.85753, showed
    [0.858, 1.000], and none of 10 right (upper 0.30850) showed [0.000, 0.308], each
    narrower than the interval computed. A lower bound is now rounded down, an upper up."""
    note = boundary_note({"test": (24, 1.0), "validation": (10, 0.0)})
    assert "all of 24 right, accuracy [0.857, 1.000]" in note
    assert "none of 10 right, accuracy [0.000, 0.309]" in note
    note = per_class_edge_note([[24, 0], [0, 0]], ["a", "b"])
    assert "a recall 24 of 24, [0.857, 1.000]" in note
    assert format_interval(0.85753, 0.91251) == "[0.857, 0.913]"
    assert format_interval(0.85, 0.9 + 1e-15) == "[0.850, 0.900]"  # no hair of float error
    assert format_interval(1.0, 1.0) == "[1.000, 1.000]"


def test_weighted_f1_is_within_twice_the_error_rate_of_1():
    """The bound /model gives weighted F1 at the edge: 2 x accuracy - 1 <= weighted F1 <=
    2 x accuracy, on any confusion matrix (here 2,000 random ones, skewed and not)."""
    rng = np.random.default_rng(0)
    for _ in range(2000):
        k = int(rng.integers(2, 6))
        cm = rng.integers(0, 50, size=(k, k)) * (rng.random((k, k)) < 0.6)
        cm[np.diag_indices(k)] += rng.integers(0, 400, size=k)
        if cm.sum() == 0:
            continue
        m = metrics_from_confusion(cm)
        assert 2 * m["accuracy"] - 1 - 1e-12 <= m["f1_weighted"] <= 2 * m["accuracy"] + 1e-12


def test_the_edge_note_says_the_f1_intervals_are_as_narrow():
    """An all-right split's report gave accuracy its exact interval and said nothing of F1,
    shown beside it as [1.000, 1.000]."""
    note = boundary_note({"test": (24, 1.0)})
    assert "weighted F1 lies between 2 x accuracy - 1 and 2 x accuracy" in note
    assert "macro F1 has no such bound" in note


@pytest.mark.parametrize(
    "score",
    [
        lambda e: evaluate_predictions(e, e, ["a", "b"]),
        lambda e: bootstrap_ci(e, e, 2),
    ],
)
def test_no_examples_is_refused_by_name_not_divided_by(score):
    with pytest.raises(ValueError, match="no examples to score"):
        score(np.array([], dtype=int))
