"""prepare_data on small synthetic tables: split ratios and stratification, seeds and the
fingerprint, duplicates, conflicts and leakage, given splits, label mapping, subsampling."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fintune.config.schema import DataConfig
from fintune.data.prepare import data_warnings, fingerprint, prepare_data
from fintune.errors import FintuneError

LABELS = ["negative", "neutral", "positive"]
COUNTS = {"negative": 40, "neutral": 100, "positive": 60}  # 200 examples


def _frame(counts: dict[str, int] = COUNTS, prefix: str = "") -> pd.DataFrame:
    rows = [
        {"text": f"{prefix}{label} sentence {i}", "label": label}
        for label, n in counts.items()
        for i in range(n)
    ]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def _data(path: Path, **fields) -> DataConfig:
    return DataConfig(path=str(path), **fields)


def _per_label(frame: pd.DataFrame, labels: list[str] = LABELS) -> dict[str, int]:
    counts = frame["label"].value_counts()
    return {name: int(counts.get(i, 0)) for i, name in enumerate(labels)}


def _texts(frame: pd.DataFrame) -> list[str]:
    return list(frame["text"])


@pytest.fixture
def table(tmp_path) -> Path:
    return _write(_frame(), tmp_path / "all.csv")


# --------------------------------------------------------------------------- splitting


def test_split_ratios_and_stratification(table):
    """test = a fraction of all examples; validation = a fraction of the rest."""
    data = prepare_data(_data(table, labels=LABELS, split={"test": 0.2, "validation": 0.25}), 1)
    sizes = {role: len(frame) for role, frame in data.splits.items()}
    assert sizes == {"train": 120, "validation": 40, "test": 40}
    # every label keeps its share (20% / 50% / 30%) in every split
    assert _per_label(data.splits["test"]) == {"negative": 8, "neutral": 20, "positive": 12}
    assert _per_label(data.splits["validation"]) == {"negative": 8, "neutral": 20, "positive": 12}
    assert _per_label(data.splits["train"]) == {"negative": 24, "neutral": 60, "positive": 36}
    # the splits partition the data
    texts = [t for frame in data.splits.values() for t in frame["text"]]
    assert len(texts) == len(set(texts)) == 200
    assert data.labels == LABELS
    for frame in data.splits.values():
        assert list(frame.columns) == ["text", "label"]


def test_split_ratios_round_to_the_nearest_example(tmp_path):
    path = _write(_frame({"a": 25, "b": 26}), tmp_path / "d.csv")  # 51 examples
    data = prepare_data(_data(path, split={"test": 0.3, "validation": 0.15}), 0)
    n_test = round(51 * 0.3)
    n_val = round((51 - n_test) * 0.15)
    assert len(data.splits["test"]) == n_test == 15
    assert len(data.splits["validation"]) == n_val == 5
    assert len(data.splits["train"]) == 51 - n_test - n_val


def test_unstratified_split_keeps_the_sizes(table):
    data = prepare_data(_data(table, split={"test": 0.1, "validation": 0.5, "stratify": False}), 3)
    assert {r: len(f) for r, f in data.splits.items()} == {
        "train": 90,
        "validation": 90,
        "test": 20,
    }


def test_same_seed_same_splits_and_fingerprint(table):
    config = _data(table, labels=LABELS)
    first, second = prepare_data(config, 7), prepare_data(config, 7)
    for role in first.splits:
        pd.testing.assert_frame_equal(first.splits[role], second.splits[role])
    assert first.fingerprint == second.fingerprint
    assert len(first.fingerprint["sha256"]) == 64
    assert first.fingerprint["counts"]["test"]["n"] == 40


def test_different_seed_different_splits_and_fingerprint(table):
    config = _data(table, labels=LABELS)
    first, other = prepare_data(config, 7), prepare_data(config, 8)
    assert set(_texts(first.splits["test"])) != set(_texts(other.splits["test"]))
    assert first.fingerprint["sha256"] != other.fingerprint["sha256"]
    assert first.fingerprint["counts"] == other.fingerprint["counts"]  # same sizes, stratified


def test_the_label_order_does_not_change_which_examples_are_held_out(table, tmp_path):
    """Stratified on class ids, the split shuffled each class in id order: data.labels in
    another order, or a CSV's integer labels read as a JSONL's text, held out other test
    and validation examples for the same rows and seed."""
    given = prepare_data(_data(table, labels=LABELS), 7)
    reordered = prepare_data(_data(table, labels=LABELS[::-1]), 7)
    subsampled = [
        prepare_data(_data(table, labels=labels, max_train_samples=50), 7).splits["train"]
        for labels in (LABELS, LABELS[::-1])
    ]
    assert set(_texts(subsampled[0])) == set(_texts(subsampled[1]))
    numbers = pd.DataFrame({"text": [f"note {i}" for i in range(240)]})
    numbers["label"] = [1 + i % 12 for i in range(240)]
    numbers.to_csv(tmp_path / "n.csv", index=False)
    numbers.astype({"label": str}).to_json(tmp_path / "n.jsonl", orient="records", lines=True)
    as_int, as_text = (prepare_data(_data(tmp_path / f"n.{e}"), 7) for e in ("csv", "jsonl"))
    for role in ("validation", "test"):
        assert set(_texts(given.splits[role])) == set(_texts(reordered.splits[role]))
        assert set(_texts(as_int.splits[role])) == set(_texts(as_text.splits[role]))


def test_fingerprint_depends_on_text_label_and_label_order():
    splits = {"train": pd.DataFrame({"text": ["a", "b"], "label": [0, 1]})}
    base = fingerprint(splits, ["x", "y"])["sha256"]
    assert fingerprint(splits, ["x", "y"])["sha256"] == base
    assert fingerprint(splits, ["y", "x"])["sha256"] != base
    changed = {"train": pd.DataFrame({"text": ["a", "c"], "label": [0, 1]})}
    assert fingerprint(changed, ["x", "y"])["sha256"] != base
    relabelled = {"train": pd.DataFrame({"text": ["a", "b"], "label": [1, 1]})}
    assert fingerprint(relabelled, ["x", "y"])["sha256"] != base
    assert fingerprint(splits, ["x", "y"])["counts"] == {
        "train": {"n": 2, "labels": {"x": 1, "y": 1}}
    }


# --------------------------------------------------------------------------- quality


def _with_duplicates_and_conflicts(tmp_path) -> Path:
    frame = _frame({"negative": 20, "neutral": 20, "positive": 20})
    extra = pd.DataFrame(
        [
            {"text": "negative sentence 0", "label": "negative"},  # duplicate
            {"text": "negative sentence 0", "label": "negative"},  # duplicate
            {"text": "neutral sentence 1", "label": "neutral"},  # duplicate
            {"text": "positive sentence 2", "label": "negative"},  # conflict
        ]
    )
    return _write(pd.concat([frame, extra], ignore_index=True), tmp_path / "d.csv")


def test_duplicates_and_conflicts_are_reported_and_kept_by_default(tmp_path):
    data = prepare_data(_data(_with_duplicates_and_conflicts(tmp_path), labels=LABELS), 0)
    report = data.report["duplicates"]["train"]
    assert report["rows"] == 64
    assert report["duplicate_rows"] == 3
    assert report["conflicting_texts"] == 1
    assert report["conflicting_rows"] == 2
    assert report["examples_of_conflicts"] == ["positive sentence 2"]
    assert report["kept_rows"] == 64
    assert sum(len(f) for f in data.splits.values()) == 64


def test_duplicates_drop_keeps_the_first(tmp_path):
    path = _with_duplicates_and_conflicts(tmp_path)
    data = prepare_data(_data(path, labels=LABELS, duplicates="drop"), 0)
    report = data.report["duplicates"]["train"]
    assert report["duplicate_rows"] == 3 and report["kept_rows"] == 61
    texts = [t for frame in data.splits.values() for t in frame["text"]]
    assert len(texts) == 61
    assert texts.count("negative sentence 0") == 1
    assert texts.count("positive sentence 2") == 2  # the conflict is kept


def test_conflicts_drop_removes_every_row_of_the_text(tmp_path):
    path = _with_duplicates_and_conflicts(tmp_path)
    data = prepare_data(_data(path, labels=LABELS, conflicts="drop"), 0)
    assert data.report["duplicates"]["train"]["kept_rows"] == 62
    texts = [t for frame in data.splits.values() for t in frame["text"]]
    assert "positive sentence 2" not in texts
    assert texts.count("negative sentence 0") == 3  # duplicates are kept


def test_both_drops(tmp_path):
    path = _with_duplicates_and_conflicts(tmp_path)
    data = prepare_data(_data(path, labels=LABELS, duplicates="drop", conflicts="drop"), 0)
    texts = [t for frame in data.splits.values() for t in frame["text"]]
    assert len(texts) == len(set(texts)) == 59


def _given_splits(tmp_path, leak: int = 2) -> Path:
    folder = tmp_path / "given"
    folder.mkdir()
    train = _frame({"negative": 10, "neutral": 10, "positive": 10}, prefix="train ")
    test = _frame({"negative": 4, "neutral": 4, "positive": 4}, prefix="test ")
    validation = _frame({"negative": 3, "neutral": 3, "positive": 3}, prefix="val ")
    if leak:  # the first `leak` test rows repeat train rows
        test.iloc[:leak] = train.iloc[:leak].to_numpy()
    _write(train, folder / "train.csv")
    _write(validation, folder / "validation.csv")
    _write(test, folder / "test.csv")
    return folder


def test_given_splits_are_used_as_given(tmp_path):
    folder = _given_splits(tmp_path, leak=0)
    data = prepare_data(_data(folder, labels=LABELS), 0)
    assert {r: len(f) for r, f in data.splits.items()} == {
        "train": 30,
        "validation": 9,
        "test": 12,
    }
    assert data.report["source_splits"] == ["test", "train", "validation"]
    given_val = pd.read_csv(folder / "validation.csv")
    assert _texts(data.splits["validation"]) == list(given_val["text"])  # same rows, same order
    assert list(data.splits["validation"]["label"]) == [LABELS.index(x) for x in given_val["label"]]


def test_texts_shared_between_given_splits_are_reported(tmp_path):
    folder = _given_splits(tmp_path, leak=2)
    data = prepare_data(_data(folder, labels=LABELS), 0)
    assert data.report["duplicates"]["test_texts_also_in_train"] == 2
    assert data.report["duplicates"]["validation_texts_also_in_train"] == 0
    assert len(data.splits["train"]) == 30  # reported, not dropped by default
    shared = set(_texts(data.splits["test"])) & set(_texts(data.splits["train"]))
    assert len(shared) == 2


def test_texts_shared_with_train_leave_train_when_dropping_duplicates(tmp_path):
    folder = _given_splits(tmp_path, leak=2)
    data = prepare_data(_data(folder, labels=LABELS, duplicates="drop"), 0)
    assert data.report["duplicates"]["test_texts_also_in_train"] == 2
    assert len(data.splits["train"]) == 28 and len(data.splits["test"]) == 12
    assert not set(_texts(data.splits["test"])) & set(_texts(data.splits["train"]))


def test_rows_dropped_as_also_in_a_later_split_are_counted_and_not_kept(tmp_path):
    """kept_rows was counted before the texts shared with test left train: train said 30
    kept but held 28, and no count said where the 2 went."""
    from types import SimpleNamespace

    from fintune.report.markdown import _quality_lines

    folder = _given_splits(tmp_path, leak=2)
    config = _data(folder, labels=LABELS, duplicates="drop")
    report = prepare_data(config, 0).report["duplicates"]
    assert report["train"]["kept_rows"] == 28
    assert report["train"]["dropped_across_splits"] == 2
    assert report["test"]["kept_rows"] == 12 and "dropped_across_splits" not in report["test"]
    lines = _quality_lines({"duplicates": report}, SimpleNamespace(data=config))
    assert (
        "- source train: 30 rows, 0 exact duplicates (drop), 0 texts with conflicting labels "
        "over 0 rows (keep); 2 dropped as also in another split; 28 kept"
    ) in lines


def test_a_text_with_another_label_in_another_given_split_is_a_conflict(tmp_path):
    """A text labelled positive in train.csv and negative in test.csv was no conflict:
    conflicts: drop kept it in both and counted none (pooled with use_given: false, it was
    dropped), and the only warning called it leakage, for data.duplicates."""
    from fintune.data import data_warnings

    folder = _given_splits(tmp_path, leak=0)
    train, test = pd.read_csv(folder / "train.csv"), pd.read_csv(folder / "test.csv")
    test.loc[0, "text"] = train.loc[0, "text"]
    test.loc[0, "label"] = next(x for x in LABELS if x != train.loc[0, "label"])
    _write(test, folder / "test.csv")
    shared = train.loc[0, "text"]
    kept = prepare_data(_data(folder, labels=LABELS), 0)
    assert kept.report["duplicates"]["conflicting_texts_across_splits"] == 1
    assert kept.report["duplicates"]["examples_of_conflicts_across_splits"] == [shared]
    assert shared in _texts(kept.splits["train"]) and shared in _texts(kept.splits["test"])
    config = _data(folder, labels=LABELS, conflicts="drop")
    data = prepare_data(config, 0)
    report = data.report["duplicates"]
    assert report["conflicting_texts_across_splits"] == 1
    assert report["train"]["conflicting_texts"] == report["test"]["conflicting_texts"] == 0
    assert report["train"]["dropped_across_splits"] == report["test"]["dropped_across_splits"] == 1
    assert (report["train"]["kept_rows"], report["test"]["kept_rows"]) == (29, 11)
    assert report["test_texts_also_in_train"] == 0
    assert not any(shared in _texts(frame) for frame in data.splits.values())
    assert not any("leakage" in note for note in data_warnings(data, config))
    pooled = prepare_data(
        _data(folder, labels=LABELS, conflicts="drop", split={"use_given": False}), 0
    )
    assert not any(shared in _texts(frame) for frame in pooled.splits.values())


def test_an_exact_duplicate_of_a_conflicting_text_is_dropped_too(tmp_path):
    path = _with_duplicates_and_conflicts(tmp_path)
    frame = pd.read_csv(path)
    extra = pd.DataFrame([{"text": "positive sentence 2", "label": "negative"}])
    _write(pd.concat([frame, extra], ignore_index=True), path)
    data = prepare_data(_data(path, labels=LABELS, duplicates="drop"), 0)
    texts = [t for frame in data.splits.values() for t in frame["text"]]
    assert texts.count("positive sentence 2") == 2  # one per label: the conflict is kept


def test_texts_shared_by_given_validation_and_test_leave_validation(tmp_path):
    folder = _given_splits(tmp_path, leak=0)
    test, validation = pd.read_csv(folder / "test.csv"), pd.read_csv(folder / "validation.csv")
    validation.iloc[:2] = test.iloc[:2].to_numpy()
    _write(validation, folder / "validation.csv")
    kept = prepare_data(_data(folder, labels=LABELS), 0)
    assert kept.report["duplicates"]["test_texts_also_in_validation"] == 2
    assert len(kept.splits["validation"]) == 9
    data = prepare_data(_data(folder, labels=LABELS, duplicates="drop"), 0)
    assert len(data.splits["validation"]) == 7 and len(data.splits["test"]) == 12
    assert not set(_texts(data.splits["validation"])) & set(_texts(data.splits["test"]))


def test_split_names_maps_a_source_split_to_a_role(tmp_path):
    folder = tmp_path / "given"
    folder.mkdir()
    _write(_frame(prefix="train "), folder / "train.csv")
    _write(_frame({"negative": 5, "neutral": 5, "positive": 5}, prefix="val "), folder / "dev.csv")
    data = prepare_data(_data(folder, labels=LABELS, split_names={"test": "validation"}), 0)
    assert _texts(data.splits["test"]) == list(pd.read_csv(folder / "dev.csv")["text"])
    assert len(data.splits["validation"]) == round(200 * 0.1)  # carved from train
    assert len(data.splits["train"]) == 180
    assert all(t.startswith("train ") for t in data.splits["validation"]["text"])


def _bad_test_file(folder: Path, name: str, row: dict[str, str]) -> Path:
    """A test file whose row 3 (line 4, after the header) is `row`."""
    held = _frame({"negative": 5, "neutral": 5, "positive": 5}, "held ")
    held.loc[2] = row
    return _write(held, folder / name)


@pytest.mark.parametrize(
    "row, problem",
    [
        ({"text": "", "label": "neutral"}, "empty text"),
        ({"text": "a held sentence", "label": "neutrl"}, "neutrl"),
        ({"text": "N/A", "label": "neutral"}, "placeholder"),
    ],
)
def test_a_bad_row_of_one_of_several_files_names_that_file_alone(tmp_path, row, problem):
    """An error in one of several data.files named every file ('train.csv, test.csv, test
    split, row 3'); one in a folder's split_names file named only the folder, not
    holdout.csv. Each now names the file the row is in."""
    train = _write(_frame(prefix="train "), tmp_path / "train.csv")
    test = _bad_test_file(tmp_path, "test.csv", row)
    folder = tmp_path / "folder"
    folder.mkdir()
    _write(_frame(prefix="train "), folder / "train.csv")
    holdout = _bad_test_file(folder, "holdout.csv", row)
    for config, bad in [
        (DataConfig(files={"train": str(train), "test": str(test)}, labels=LABELS), test),
        (_data(folder, labels=LABELS, split_names={"test": "holdout"}), holdout),
    ]:
        if problem == "placeholder":  # a warning, in data.json
            first = prepare_data(config, 0).report["placeholder_texts"]["first"]
            assert first == f"{bad}, test split, row 3 (line 4)"
            continue
        with pytest.raises(FintuneError, match=problem) as error:
            prepare_data(config, 0)
        message = str(error.value)
        assert f"{bad}, test split, row 3 (line 4)" in message
        assert str(bad.parent / "train.csv") not in message


@pytest.mark.parametrize("stem", ["dev", "holdout"])
def test_split_names_names_a_folders_file_by_its_name(tmp_path, stem):
    """A folder's files were read under their roles only: split_names {test: dev} beside
    dev.csv was refused ('has no split 'dev'; it has: train, validation') and
    {test: holdout} left holdout.csv unread, though split_names names source splits."""
    _write(_frame(prefix="train "), tmp_path / "train.csv")
    _write(_frame({"negative": 5, "neutral": 5, "positive": 5}, "held "), tmp_path / f"{stem}.csv")
    config = _data(tmp_path, labels=LABELS, split_names={"test": stem})
    data = prepare_data(config, 0)
    assert _texts(data.splits["test"]) == list(pd.read_csv(tmp_path / f"{stem}.csv")["text"])
    assert all(t.startswith("train ") for t in data.splits["validation"]["text"])
    assert "unread_files" not in data.report
    with pytest.raises(FintuneError, match=r"data.split_names.test: .* has no split 'other'"):
        prepare_data(_data(tmp_path, labels=LABELS, split_names={"test": "other"}), 0)


def test_data_json_says_which_source_split_plays_each_role(tmp_path):
    """Under split_names {test: holdout} beside a test.csv, data.json's `test` meant
    holdout.csv in one key and test.csv in another (`unused_splits`); "holdout" was
    nowhere."""
    _write(_frame(prefix="train "), tmp_path / "train.csv")
    _write(_frame({"negative": 5, "neutral": 5, "positive": 5}, "held "), tmp_path / "holdout.csv")
    _write(_frame({"negative": 2, "neutral": 2, "positive": 1}, "spare "), tmp_path / "test.csv")
    data = prepare_data(_data(tmp_path, labels=LABELS, split_names={"test": "holdout"}), 0)
    assert data.report["split_sources"] == {"test": "holdout", "train": "train"}
    assert data.report["unused_splits"] == {"test": 5}
    pooled = _data(tmp_path, labels=LABELS, split_names={"test": "holdout"})
    pooled.split.use_given = False
    report = prepare_data(pooled, 0).report  # test is a cut of the pool, not holdout.csv
    assert "split_sources" not in report and report["pooled_sources"] == ["holdout", "train"]


def test_a_split_name_that_differs_in_case_names_the_near_match(tmp_path):
    """split_names matches names exactly: {test: holdout} beside Holdout.csv said only
    'has no split 'holdout'; it has: train', not which file was meant."""
    _write(_frame(prefix="train "), tmp_path / "train.csv")
    _write(_frame({"negative": 5, "neutral": 5, "positive": 5}, "held "), tmp_path / "Holdout.csv")
    with pytest.raises(
        FintuneError,
        match=r"has no split 'holdout'; it has: train; did you mean 'Holdout' \(Holdout.csv\)\? "
        "Split names match case",
    ):
        prepare_data(_data(tmp_path, labels=LABELS, split_names={"test": "holdout"}), 0)
    _write(_frame({"negative": 5, "neutral": 5, "positive": 5}, "v "), tmp_path / "validation.csv")
    with pytest.raises(FintuneError, match=r"train, validation; did you mean 'validation'\?"):
        prepare_data(_data(tmp_path, labels=LABELS, split_names={"test": "Validation"}), 0)
    (tmp_path / "Holdout.csv").rename(tmp_path / "holdout.csv.gz")
    with pytest.raises(
        FintuneError,
        match=r"; holdout.csv.gz is not read: a split file needs a csv, tsv, jsonl, json, parquet",
    ):
        prepare_data(_data(tmp_path, labels=LABELS, split_names={"test": "holdout"}), 0)


def test_a_split_file_with_a_dot_in_its_name_is_named_by_its_stem(tmp_path):
    """{test: holdout} beside holdout.v2.csv said 'holdout.v2.csv is not read: a split file
    needs a csv, ... suffix', though it has one: its split name is 'holdout.v2', all before
    the last suffix, and naming that reads it."""
    _write(_frame(prefix="train "), tmp_path / "train.csv")
    _write(_frame({"negative": 5, "neutral": 5, "positive": 5}, "h "), tmp_path / "holdout.v2.csv")
    with pytest.raises(FintuneError) as caught:
        prepare_data(_data(tmp_path, labels=LABELS, split_names={"test": "holdout"}), 0)
    assert "needs a csv" not in str(caught.value)
    assert "did you mean 'holdout.v2' (holdout.v2.csv)?" in str(caught.value)
    assert "its name before its last suffix" in str(caught.value)
    data = prepare_data(_data(tmp_path, labels=LABELS, split_names={"test": "holdout.v2"}), 0)
    assert len(data.splits["test"]) == 15
    (tmp_path / "holdout.v2.csv").rename(tmp_path / "Holdout.csv.gz")  # not 'Holdout' either
    with pytest.raises(FintuneError, match=r"; Holdout.csv.gz is not read: a split file needs"):
        prepare_data(_data(tmp_path, labels=LABELS, split_names={"test": "holdout"}), 0)


def test_a_source_split_no_role_takes_is_named_in_a_warning(tmp_path):
    """split_names {test: validation} beside a test split left that test split's rows out
    without a word."""
    from fintune.data import data_warnings

    for name, prefix, n in (("train", "tr ", 30), ("validation", "v ", 5), ("test", "te ", 7)):
        counts = {"negative": n, "neutral": n, "positive": n}
        _write(_frame(counts, prefix), tmp_path / f"{name}.csv")
    config = _data(tmp_path, labels=LABELS, split_names={"test": "validation"})
    data = prepare_data(config, 0)
    assert data.report["unused_splits"] == {"test": 21}
    assert not any(t.startswith("te ") for f in data.splits.values() for t in f["text"])
    assert (
        f"{tmp_path}: its split 'test' (21 rows) is not used: no role takes it "
        "(data.split_names: {'test': 'validation'}); to use it, give it a role in "
        "data.split_names"
    ) in data_warnings(data, config)
    plain = prepare_data(_data(tmp_path, labels=LABELS), 0)
    assert "unused_splits" not in plain.report


def test_split_names_names_train(tmp_path):
    folder = tmp_path / "given"
    folder.mkdir()
    _write(_frame(), folder / "test.csv")  # the only split, used for training
    data = prepare_data(_data(folder, labels=LABELS, split_names={"train": "test"}), 0)
    assert sum(len(f) for f in data.splits.values()) == 200
    assert len(data.splits["test"]) == 40


def test_use_given_false_pools_and_resplits(tmp_path):
    folder = _given_splits(tmp_path, leak=0)
    data = prepare_data(
        _data(folder, labels=LABELS, split={"use_given": False, "test": 0.2, "validation": 0.2}),
        0,
    )
    assert data.report["source_splits"] == ["train"]
    sizes = {r: len(f) for r, f in data.splits.items()}
    assert sum(sizes.values()) == 51 and sizes["test"] == round(51 * 0.2)


def test_use_given_false_splits_the_same_files_alike_in_any_order(tmp_path):
    """The files were pooled in the order data.files listed them (or a folder's names
    sorted them): the same three files as train, validation, test and as test,
    validation, train gave two test sets."""
    files = _split_files(tmp_path, ("train", "validation", "test"))
    split = {"use_given": False}
    listed = prepare_data(DataConfig(files=files, split=split), 0)
    reversed_ = prepare_data(DataConfig(files=dict(reversed(files.items())), split=split), 0)
    folder = prepare_data(_data(tmp_path, split=split), 0)
    assert reversed_.fingerprint == listed.fingerprint == folder.fingerprint


def test_use_given_false_names_the_row_of_its_own_file(tmp_path):
    folder = _given_splits(tmp_path, leak=0)
    test = pd.read_csv(folder / "test.csv")
    test.loc[2, "label"] = "bullish"
    test.to_csv(folder / "test.csv", index=False)
    config = _data(folder, labels=LABELS, split={"use_given": False})
    with pytest.raises(FintuneError, match="test split, row 3 \\(line 4\\): label 'bullish'"):
        prepare_data(config, 0)


def test_given_test_split_only_validation_is_made(tmp_path):
    folder = tmp_path / "given"
    folder.mkdir()
    _write(_frame(), folder / "train.csv")
    _write(_frame({"negative": 2, "neutral": 2, "positive": 2}, prefix="t "), folder / "test.csv")
    data = prepare_data(_data(folder, labels=LABELS, split={"test": 0.5}), 0)
    assert len(data.splits["test"]) == 6  # given, not re-split with the 0.5 ratio
    assert len(data.splits["validation"]) == 20 and len(data.splits["train"]) == 180


# --------------------------------------------------------------------------- labels


def test_string_labels_follow_the_given_order(table):
    order = ["positive", "negative", "neutral"]
    data = prepare_data(_data(table, labels=order), 0)
    assert data.labels == order
    frame = pd.concat(data.splits.values())
    for text, label in zip(frame["text"], frame["label"], strict=True):
        assert order[label] == text.split()[0]


def test_labels_default_to_sorted(tmp_path):
    path = _write(_frame({"sell": 20, "buy": 20, "hold": 20}), tmp_path / "d.csv")
    data = prepare_data(_data(path), 0)
    assert data.labels == ["buy", "hold", "sell"]


def test_integer_labels_are_ids_into_the_given_labels(tmp_path):
    frame = _frame()
    frame["label"] = frame["label"].map({name: i for i, name in enumerate(LABELS)})
    path = _write(frame, tmp_path / "ids.csv")
    data = prepare_data(_data(path, labels=LABELS), 0)
    assert data.labels == LABELS
    all_rows = pd.concat(data.splits.values())
    for text, label in zip(all_rows["text"], all_rows["label"], strict=True):
        assert LABELS[label] == text.split()[0]


def test_integer_labels_without_names_become_their_ids(tmp_path):
    frame = pd.DataFrame(
        {"text": [f"t{i}" for i in range(60)], "label": [i % 3 for i in range(60)]}
    )
    path = _write(frame, tmp_path / "ids.csv")
    data = prepare_data(_data(path), 0)
    assert data.labels == ["0", "1", "2"]
    assert sorted(pd.concat(data.splits.values())["label"].unique()) == [0, 1, 2]


@pytest.mark.parametrize(
    ("values", "given", "labels"),
    [
        ([-1, 0, 1], None, ["-1", "0", "1"]),  # inferred: integers not from 0 are names
        ([1, 2, 3], None, ["1", "2", "3"]),
        ([-1, 0, 1], ["-1", "0", "1"], ["-1", "0", "1"]),  # given as names
        ([1, 2, 3], ["3", "2", "1"], ["3", "2", "1"]),
        # a csv's "00" is read as the number 0: still the label "00", wherever it is listed
        (["00", "01", "02"], ["02", "01", "00"], ["02", "01", "00"]),
        (["07", "08", "+9"], ["+9", "07", "08"], ["+9", "07", "08"]),
        # inferred, they keep the file's spelling too, in the numbers' order
        (["00", "01", "02"], None, ["00", "01", "02"]),
        (["07", "08", "+9"], None, ["07", "08", "+9"]),
    ],
)
def test_integer_labels_that_are_names_map_by_name(tmp_path, values, given, labels):
    frame = pd.DataFrame(
        {
            "text": [f"t{i} {values[i % 3]}" for i in range(60)],
            "label": [values[i % 3] for i in range(60)],
        }
    )
    data = prepare_data(_data(_write(frame, tmp_path / "ids.csv"), labels=given), 0)
    assert data.labels == labels
    rows = pd.concat(data.splits.values())
    assert all(labels[i] == t.split()[1] for t, i in zip(rows["text"], rows["label"], strict=True))


def test_one_number_written_two_ways_is_named_not_one_class(tmp_path):
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(40)], "label": ["1", "01"] * 20})
    path = _write(frame, tmp_path / "ids.csv")
    with pytest.raises(FintuneError, match=r"'1' and '01' are the number 1 written two") as err:
        prepare_data(_data(path), 0)
    assert "'01': " + f"{path}, train split, row 2 (line 3)" in str(err.value)


def test_split_names_that_give_the_train_split_away_say_so(table):
    """It said "has no train split (it has train)"."""
    with pytest.raises(
        FintuneError,
        match=r"data.split_names: .*all.csv has no split left for train: split_names gives "
        r"'train' to test; map another split to train",
    ):
        prepare_data(_data(table, split_names={"test": "train"}), 0)


def test_a_directory_in_data_files_is_named_as_one(tmp_path):
    """It said 'file not found' of a directory that is there."""
    with pytest.raises(FintuneError, match=rf"data.files.train: {tmp_path} is a directory; "):
        prepare_data(DataConfig(files={"train": str(tmp_path)}), 0)


def test_integer_labels_are_read_the_same_way_in_every_split(tmp_path):
    folder = tmp_path / "given"
    folder.mkdir()
    train = pd.DataFrame(
        {"text": [f"t{i}" for i in range(30)], "label": [i % 3 for i in range(30)]}
    )
    test = pd.DataFrame(
        {"text": [f"s{i}" for i in range(6)], "label": [1 + i % 2 for i in range(6)]}
    )
    _write(train, folder / "train.csv")
    _write(test, folder / "test.csv")
    data = prepare_data(_data(folder, labels=["1", "2", "3"]), 0)  # 0 is no name: positions
    assert sorted(set(data.splits["test"]["label"])) == [1, 2]


def test_integer_labels_in_one_split_and_their_text_in_another_agree(tmp_path):
    folder = tmp_path / "given"
    folder.mkdir()
    train = pd.DataFrame(
        {"text": [f"t{i}" for i in range(30)], "label": [1 + i % 3 for i in range(30)]}
    )
    _write(train, folder / "train.csv")
    rows = [{"text": f"s{i}", "label": str(1 + i % 3)} for i in range(6)]
    (folder / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    data = prepare_data(_data(folder), 0)
    assert data.labels == ["1", "2", "3"]
    assert data.splits["test"]["label"].tolist() == [int(r["label"]) - 1 for r in rows]
    assert sorted(set(data.splits["train"]["label"])) == [0, 1, 2]


def test_a_missing_label_in_a_nullable_column_is_named_and_booleans_are_labels(tmp_path):
    path = tmp_path / "d.parquet"
    frame = pd.DataFrame({"text": ["a", "b", "c"], "label": pd.array(["x", None, "y"], "string")})
    frame.to_parquet(path)
    with pytest.raises(FintuneError, match="row 2: empty or missing label"):
        prepare_data(_data(path), 0)
    flags = pd.DataFrame(
        {"text": [f"t{i}" for i in range(40)], "label": [i % 2 == 0 for i in range(40)]}
    )
    flags["label"] = flags["label"].astype("boolean")
    flags.to_parquet(path)
    assert prepare_data(_data(path), 0).labels == ["False", "True"]


@pytest.mark.parametrize(
    ("written", "given"), [(["true", "false"], None), (["TRUE", "FALSE"], ["TRUE", "FALSE"])]
)
def test_true_false_labels_in_a_csv_keep_the_files_text(tmp_path, written, given):
    """pandas reads the column as booleans, printed True/False: the labels are as written."""
    frame = pd.DataFrame(
        {"text": [f"t{i} {written[i % 2]}" for i in range(40)], "label": written * 20}
    )
    data = prepare_data(_data(_write(frame, tmp_path / "d.csv"), labels=given), 0)
    assert data.labels == (given or sorted(written))
    rows = pd.concat(data.splits.values())
    pairs = zip(rows["text"], rows["label"], strict=True)
    assert all(data.labels[i] == text.split()[1] for text, i in pairs)
    frame["label"] = ["True", "False"] * 20  # as Python writes them: the same names as before
    assert prepare_data(_data(_write(frame, tmp_path / "d.csv")), 0).labels == ["False", "True"]


def test_true_false_labels_in_jsonl_are_named_as_in_the_csv(tmp_path):
    """JSON's true/false were read as Python's True/False: labels 'True'/'False' from a
    jsonl file, 'true'/'false' from the same data as csv, and data.labels [false, true]
    (the file's own words) refused the jsonl's rows."""
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(40)], "label": [True, False] * 20})
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    frame.assign(label=frame["label"].map({True: "true", False: "false"})).to_csv(
        tmp_path / "d.csv", index=False
    )
    as_csv = prepare_data(_data(tmp_path / "d.csv"), 0)
    as_jsonl = prepare_data(_data(tmp_path / "d.jsonl"), 0)
    assert as_jsonl.labels == as_csv.labels == ["false", "true"]
    assert as_jsonl.fingerprint == as_csv.fingerprint
    given = prepare_data(_data(tmp_path / "d.jsonl", labels=["false", "true"]), 0)
    assert given.fingerprint == as_jsonl.fingerprint


def test_boolean_labels_in_parquet_find_the_csvs_names_in_data_labels(tmp_path):
    """A parquet boolean column's inferred labels stay 'False'/'True' (their fingerprint is
    pinned), but data.labels [false, true], as csv and jsonl name them, refused row 1:
    'label False is not in the label map ['false', 'true']'."""
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(40)], "label": [True, False] * 20})
    frame.to_parquet(tmp_path / "d.parquet")
    frame.assign(label=frame["label"].map({True: "true", False: "false"})).to_csv(
        tmp_path / "d.csv", index=False
    )
    inferred = prepare_data(_data(tmp_path / "d.parquet"), 0)
    assert inferred.labels == ["False", "True"]
    pinned = "a36bbd1d3f30b84f4eaca443a1b74f9944985c7b19034a82278c9b39283df2f9"
    assert inferred.fingerprint["sha256"] == pinned
    given = prepare_data(_data(tmp_path / "d.parquet", labels=["false", "true"]), 0)
    assert given.fingerprint == prepare_data(_data(tmp_path / "d.csv"), 0).fingerprint
    written = prepare_data(_data(tmp_path / "d.parquet", labels=["False", "True"]), 0)
    assert written.fingerprint == inferred.fingerprint


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_fractional_labels_are_named_as_written(tmp_path, suffix):
    """Labels 1, 1.5 and 2 (a rating in half steps) are read as floats: they were named
    '1.0', '1.5', '2.0', and data.labels [1, 1.5, 2], as the file writes them, refused
    row 1: 'label 1.0 is not in the label map ['1', '1.5', '2']'."""
    written = ["1", "1.5", "2"]
    path = tmp_path / f"d.{suffix}"
    if suffix == "csv":
        path.write_text("text,label\n" + "".join(f"t{i},{written[i % 3]}\n" for i in range(60)))
    else:
        rows = [{"text": f"t{i}", "label": json.loads(written[i % 3])} for i in range(60)]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    inferred = prepare_data(_data(path), 0)
    assert inferred.labels == written
    assert prepare_data(_data(path, labels=written), 0).fingerprint == inferred.fingerprint
    rows = pd.concat(inferred.splits.values())
    pairs = zip(rows["text"], rows["label"], strict=True)
    assert all(inferred.labels[i] == written[int(t[1:]) % 3] for t, i in pairs)
    old_names = prepare_data(_data(path, labels=["1.0", "1.5", "2.0"]), 0)  # as named before
    assert old_names.splits["test"]["label"].tolist() == inferred.splits["test"]["label"].tolist()


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_fractional_labels_written_with_a_decimal_keep_their_names(tmp_path, suffix):
    """Labels written 1.0, 1.5, 2.0 (pandas' to_csv/to_json of a float column) were named
    so, and the data's fingerprint hashed those names; naming every whole float '1' (for
    files that write 1, 1.5, 2) renamed them '1', '2' and changed the fingerprint."""
    path = tmp_path / f"d.{suffix}"
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(60)], "label": [1.0, 1.5, 2.0] * 20})
    if suffix == "csv":
        frame.to_csv(path, index=False)
        assert "t0,1.0\n" in path.read_text()
    elif suffix == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    inferred = prepare_data(_data(path), 0)
    assert inferred.labels == ["1.0", "1.5", "2.0"]
    given = prepare_data(_data(path, labels=["1.0", "1.5", "2.0"]), 0)
    assert given.fingerprint == inferred.fingerprint


@pytest.mark.parametrize("given", [None, ["a", "b"]])
def test_an_infinite_label_is_named_not_a_crash(tmp_path, given):
    """A csv's 'inf' among integer ids is read as a float infinity: int() of it raised
    OverflowError."""
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(20)) + "x,inf\n")
    with pytest.raises(FintuneError, match=r"row 21 \(line 22\): label inf in column 'label'"):
        prepare_data(_data(path, labels=given), 0)


def test_a_label_that_is_a_list_is_refused_with_its_row(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"text": "up", "label": "pos"}, {"text": "down", "label": ["pos", "neg"]}]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    with pytest.raises(FintuneError, match="row 2 \\(line 2\\): label in column 'label' is a list"):
        prepare_data(_data(path), 0)


def test_labels_absent_from_train_are_reported(tmp_path):
    path = _write(_frame({"negative": 20, "positive": 20}), tmp_path / "d.csv")
    data = prepare_data(_data(path, labels=LABELS), 0)
    assert data.report["labels_missing_from_train"] == ["neutral"]
    assert data.fingerprint["counts"]["train"]["labels"]["neutral"] == 0


def test_a_label_with_training_examples_but_none_held_out_is_warned_of(tmp_path):
    """50 a, 48 b and 2 c: the stratified split put both c in train, so the test and
    validation scores left c out, and nothing said so."""
    from fintune.data import data_warnings

    path = _write(_frame({"a": 50, "b": 48, "c": 2}), tmp_path / "d.csv")
    config = _data(path)
    data = prepare_data(config, 0)
    assert data.fingerprint["counts"]["test"]["labels"]["c"] == 0
    assert data.report["labels_missing_from_test"] == ["c"]
    assert data.report["labels_missing_from_validation"] == ["c"]
    assert "labels_missing_from_train" not in data.report
    notes = data_warnings(data, config)
    for role in ("validation", "test"):
        assert (
            f"label 'c' has 2 training examples but none in {role}: {role} metrics leave it "
            "out (macro averages cover the labels in the split or predicted)"
        ) in notes


def test_labels_with_surrounding_spaces_are_inferred_stripped(tmp_path):
    path = tmp_path / "spaced.csv"
    rows = [f"sentence {i}, {'positive' if i % 2 else 'negative'}" for i in range(40)]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    data = prepare_data(_data(path), 0)
    assert data.labels == ["negative", "positive"]


# --------------------------------------------------------------------------- subsampling, cleaning


def test_max_train_samples_subsamples_train_stratified(table):
    data = prepare_data(_data(table, labels=LABELS, max_train_samples=50), 0)
    assert len(data.splits["train"]) == 50
    assert _per_label(data.splits["train"]) == {"negative": 10, "neutral": 25, "positive": 15}
    assert len(data.splits["test"]) == 40  # untouched
    again = prepare_data(_data(table, labels=LABELS, max_train_samples=50), 0)
    assert _texts(again.splits["train"]) == _texts(data.splits["train"])


def test_max_eval_samples_limits_validation_and_test(table):
    data = prepare_data(_data(table, labels=LABELS, max_eval_samples=10), 0)
    assert len(data.splits["validation"]) == 10 and len(data.splits["test"]) == 10
    assert len(data.splits["train"]) == 144


def test_limits_above_the_size_change_nothing(table):
    plain = prepare_data(_data(table, labels=LABELS), 0)
    limited = prepare_data(_data(table, labels=LABELS, max_train_samples=10_000), 0)
    assert plain.fingerprint == limited.fingerprint


def test_cleaning_applies_and_drops_emptied_rows(tmp_path):
    frame = _frame({"negative": 20, "positive": 20})
    frame.loc[0, "text"] = "<b>$AAPL</b> https://x.com"  # empty after cleaning
    frame.loc[1, "text"] = "<p>Shares ROSE</p>"
    path = _write(frame, tmp_path / "d.csv")
    cleaning = {"strip_html": True, "strip_urls": True, "strip_cashtags": True, "lowercase": True}
    data = prepare_data(_data(path, cleaning=cleaning), 0)
    assert data.report["emptied_by_cleaning"] == 1
    from fintune.data import data_warnings

    (warning,) = data_warnings(data, _data(path, cleaning=cleaning))
    assert warning == (
        "1 text is empty after data.cleaning and is left out, such as "
        "'<b>$AAPL</b> https://x.com': no split trains or evaluates on it"
    )
    texts = [t for f in data.splits.values() for t in f["text"]]
    assert len(texts) == 39 and "shares rose" in texts
    assert all(t == t.lower() and "<" not in t for t in texts)


def test_text_is_stripped(tmp_path):
    frame = _frame({"negative": 20, "positive": 20})
    frame["text"] = "  " + frame["text"] + "  "
    data = prepare_data(_data(_write(frame, tmp_path / "d.csv")), 0)
    assert all(t == t.strip() for f in data.splits.values() for t in f["text"])


def test_errors_name_split_and_row_of_given_files(tmp_path):
    folder = _given_splits(tmp_path, leak=0)
    test = pd.read_csv(folder / "test.csv")
    test.loc[3, "label"] = "bullish"
    _write(test, folder / "test.csv")
    with pytest.raises(FintuneError, match=r"test split, row 4 \(line 5\): label 'bullish'"):
        prepare_data(_data(folder, labels=LABELS), 0)


# --------------------------------------------------------------------------- review findings


def test_float_ids_are_label_ids(tmp_path):
    path = tmp_path / "floats.jsonl"
    rows = [{"text": f"t {i}", "label": float(i % 3)} for i in range(60)]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    data = prepare_data(DataConfig(path=str(path), labels=["a", "b", "c"]), seed=0)
    assert data.labels == ["a", "b", "c"] and set(data.splits["train"]["label"]) == {0, 1, 2}


def test_texts_shared_between_splits_are_reported_after_splitting(tmp_path):
    path = tmp_path / "twice.csv"
    rows = [{"text": f"t {i}", "label": ["a", "b"][i % 2]} for i in range(50)]
    pd.DataFrame(rows + rows).to_csv(path, index=False)
    kept = prepare_data(DataConfig(path=str(path)), seed=0).report["shared_texts"]
    assert kept["train/test"] > 0
    dropped = prepare_data(DataConfig(path=str(path), duplicates="drop"), seed=0)
    assert set(dropped.report["shared_texts"].values()) == {0}


def _unicode_forms(folder: Path) -> Path:
    """Given splits where 'café' is written composed (NFC) and decomposed (NFD): twice in
    train, and once in test beside train's other spelling of a second text."""
    composed, decomposed = "Caf\u00e9 sales rose", "Cafe\u0301 sales rose"
    train = [{"text": f"t {i}", "label": ["a", "b"][i % 2]} for i in range(20)]
    train += [{"text": composed, "label": "a"}, {"text": decomposed, "label": "a"}]
    train += [{"text": "Se\u00f1or Bank fell", "label": "b"}]
    test = [{"text": f"u {i}", "label": ["a", "b"][i % 2]} for i in range(6)]
    test += [{"text": "Sen\u0303or Bank fell", "label": "b"}]
    validation = [{"text": f"v {i}", "label": ["a", "b"][i % 2]} for i in range(6)]
    folder.mkdir()
    for name, rows in (("train", train), ("validation", validation), ("test", test)):
        pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.mark.parametrize("duplicates", ["keep", "drop"])
def test_texts_that_differ_only_in_unicode_form_are_reported(tmp_path, duplicates):
    """'café' composed and decomposed are one text to a reader, but two to an exact
    comparison: neither the duplicate in train nor the leak into test was reported. They
    are reported now; which rows are kept, and the fingerprint, are as before (drop removes
    exact duplicates only)."""
    from fintune.data import data_warnings

    config = _data(_unicode_forms(tmp_path / "forms"), duplicates=duplicates)
    data = prepare_data(config, 0)
    assert {role: len(frame) for role, frame in data.splits.items()} == {
        "train": 23,
        "validation": 6,
        "test": 7,
    }
    pinned = "2dfdad13403eeabff26a486b77f387e3e8c06f5c716f51824e27dfb616f98ac8"
    assert data.fingerprint["sha256"] == pinned
    variants = data.report["unicode_variants"]
    assert variants == {"train": 1, "train/test": 1, "example": "Caf\u00e9 sales rose"}
    notes = "\n".join(data_warnings(data, config))
    assert (
        "1 text of the train split is another text there written in another Unicode form "
        "(composed or decomposed accents, such as 'Caf\u00e9 sales rose')"
    ) in notes
    assert (
        "1 text is in both the train and the test split written in another Unicode form: "
        "test scores are inflated (leakage)"
    ) in notes
    assert "data.duplicates compares texts as written" in notes


def test_unicode_variants_are_counted_per_text_even_beside_a_shared_spelling(tmp_path):
    """A form written one way in both splits hid its other spelling in the second (0 counted
    for train/test), and three spellings of one form in a split were one text, not two."""
    nfc = "Se\u00f1or Caf\u00e9 fell"
    ways = [nfc, "Sen\u0303or Caf\u00e9 fell", "Se\u00f1or Cafe\u0301 fell"]
    train = [{"text": f"t {i}", "label": ["a", "b"][i % 2]} for i in range(20)]
    train += [{"text": text, "label": "b"} for text in ways]
    test = [{"text": f"u {i}", "label": ["a", "b"][i % 2]} for i in range(6)]
    test += [{"text": nfc, "label": "b"}, {"text": "Sen\u0303or Cafe\u0301 fell", "label": "b"}]
    validation = [{"text": f"v {i}", "label": ["a", "b"][i % 2]} for i in range(6)]
    folder = tmp_path / "forms"
    folder.mkdir()
    for name, rows in (("train", train), ("validation", validation), ("test", test)):
        pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)
    data = prepare_data(_data(folder), 0)
    assert data.report["shared_texts"]["train/test"] == 1
    variants = data.report["unicode_variants"]
    assert variants == {"train": 2, "test": 1, "train/test": 1, "example": nfc}


def test_subsample_close_to_the_split_size_does_not_crash(tmp_path):
    path = tmp_path / "s.csv"
    pd.DataFrame([{"text": f"t {i}", "label": ["a", "b", "c"][i % 3]} for i in range(300)]).to_csv(
        path, index=False
    )
    full = prepare_data(DataConfig(path=str(path)), seed=0)
    n = len(full.splits["train"])
    data = prepare_data(DataConfig(path=str(path), max_train_samples=n - 1), seed=0)
    assert len(data.splits["train"]) == n - 1


def test_a_mistyped_integer_label_is_named_not_a_class_of_its_own(tmp_path):
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(30)], "label": [0, 1, 2] * 10})
    frame.loc[17, "label"] = 20
    path = _write(frame, tmp_path / "d.csv")
    with pytest.raises(
        FintuneError,
        match=r"0 to 20 \(20 first in \S*/d\.csv, train split, row 18 \(line 19\)\), "
        r"but 17 of those ids never occur \(3, 4, 5, 6, 7 \.\.\.\)",
    ):
        prepare_data(_data(path), 0)


def test_a_huge_integer_label_is_named_without_listing_every_missing_id(tmp_path):
    """A label column that holds an amount or an id (0 ... 4000000000) is named at once,
    not by building the set of the 4 billion ids that never occur (memory)."""
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(30)], "label": [0, 1, 2] * 10})
    frame.loc[5, "label"] = 4_000_000_000
    path = _write(frame, tmp_path / "d.csv")
    with pytest.raises(
        FintuneError,
        match=r"0 to 4000000000 \(4000000000 first in \S*/d\.csv, train split, "
        r"row 6 \(line 7\)\), but 3999999997 of those ids never occur \(3, 4, 5, 6, 7 \.\.\.\)",
    ):
        prepare_data(_data(path), 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            12345,
            r"row 2 \(line 2\): the text is a number \(12345\), not a string; is data.text_column",
        ),
        (1.5, r"row 2 \(line 2\): the text is a number \(1.5\), not a string"),
        # read as the word 'true', as a label must be, and trained as that text
        (True, r"row 2 \(line 2\): the text is a boolean \(True\), not a string"),
        ({"a": 1}, r"row 2 \(line 2\): the text is a dict \(\{'a': 1\}\), not a string"),
        (["a", "b"], r"row 2 \(line 2\): the text is a list \(\['a', 'b'\]\), not a string"),
        (None, r"row 2 \(line 2\): no text \(nothing in column .text.\)"),
    ],
)
def test_a_text_that_is_not_a_string_is_named_as_such(tmp_path, text, message):
    path = tmp_path / "d.jsonl"
    rows = [{"text": "up", "label": "pos"}, {"text": text, "label": "neg"}]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    with pytest.raises(FintuneError, match=message):
        prepare_data(_data(path), 0)


def test_an_all_number_text_column_reads_a_number(tmp_path):
    """A csv column of numbers only (an id column given as data.text_column) was 'the text
    is a int (1)'."""
    path = _write(pd.DataFrame({"text": [1, 2, 3], "label": ["a", "b", "a"]}), tmp_path / "d.csv")
    with pytest.raises(FintuneError, match=r"row 1 \(line 2\): the text is a number \(1\), not"):
        prepare_data(_data(path), 0)
    flags = tmp_path / "d.parquet"
    pd.DataFrame({"text": [True, False], "label": ["a", "b"]}).to_parquet(flags)
    with pytest.raises(FintuneError, match=r"row 1: the text is a boolean \(True\), not a"):
        prepare_data(_data(flags), 0)


# --------------------------------------------------------------------------- data review


def test_one_inferred_label_is_refused_naming_the_label_column(tmp_path):
    path = _write(_frame({"positive": 30}), tmp_path / "d.csv")
    with pytest.raises(
        FintuneError,
        match=r"data: the training data has one label \('positive'\); a classifier needs at "
        r"least two: is data.label_column \('label'\) the right column\?",
    ):
        prepare_data(_data(path), 0)


def test_a_train_split_with_one_label_is_refused(tmp_path):
    folder = tmp_path / "given"
    folder.mkdir()
    _write(_frame({"positive": 30}, prefix="train "), folder / "train.csv")
    _write(_frame({"negative": 3, "positive": 3}, prefix="test "), folder / "test.csv")
    with pytest.raises(FintuneError, match=r"data: the train split has one label \('positive'\)"):
        prepare_data(_data(folder, split={"stratify": False}), 0)


def test_inferred_labels_differing_only_in_case_are_named_with_a_row_of_each(tmp_path):
    frame = _frame({"negative": 20, "positive": 20})
    frame.loc[5, "label"] = "Positive"
    path = _write(frame, tmp_path / "d.csv")
    first = frame.index[frame["label"] == "positive"][0] + 1
    with pytest.raises(FintuneError) as error:
        prepare_data(_data(path), 0)
    assert str(error.value).startswith(
        "data.labels: the labels 'Positive' and 'positive' differ only in case or spacing "
        f"('Positive': {path}, train split, row 6 (line 7); 'positive': {path}, train split, "
        f"row {first} (line {first + 1}))"
    )
    assert "or list both in data.labels" in str(error.value)
    both = ["negative", "positive", "Positive"]
    given = prepare_data(_data(path, labels=both, split={"stratify": False}), 0)
    assert given.labels == ["negative", "positive", "Positive"]  # when meant, say so
    with pytest.raises(FintuneError, match="row 6 \\(line 7\\): label 'Positive' is not in"):
        prepare_data(_data(path, labels=["negative", "positive"]), 0)


def test_inferred_labels_mixing_ids_and_names_are_named(tmp_path):
    frame = _frame({"negative": 20, "positive": 20})
    frame.loc[3, "label"] = "1"
    path = _write(frame, tmp_path / "d.csv")
    with pytest.raises(
        FintuneError,
        match=r"data.labels: the labels mix integers \('1'\) and names \('negative', "
        r"'positive'\): '1' in .*d.csv, train split, row 4 \(line 5\), 'negative' in",
    ):
        prepare_data(_data(path), 0)


@pytest.mark.parametrize(
    "marker", ["NA", "N/A", "nan", "NaN", "null", "None", "none", "NONE", "Null", "na", "#N/A"]
)
def test_a_missing_value_marker_as_a_label_is_a_missing_label(tmp_path, marker):
    """In any case: an export writes Python's None as 'None', a hand-made sheet 'none'."""
    frame = _frame({"negative": 20, "positive": 20})
    frame.loc[4, "label"] = marker
    path = _write(frame, tmp_path / "d.csv")
    with pytest.raises(
        FintuneError,
        match=rf"train split, row 5 \(line 6\): empty or missing label in column 'label' "
        rf"\('{marker}' marks a missing value; if it is a label, list it in data.labels\)",
    ):
        prepare_data(_data(path), 0)
    frame.loc[5:9, "label"] = marker  # a class of its own, when data.labels says so
    _write(frame, path)
    data = prepare_data(_data(path, labels=["negative", "positive", marker]), 0)
    assert data.fingerprint["counts"]["train"]["labels"][marker] > 0


def test_a_label_that_only_begins_with_a_marker_is_a_label(tmp_path):
    frame = _frame({"negative": 20, "positive": 20})
    frame.loc[:9, "label"] = "None of the above"
    data = prepare_data(_data(_write(frame, tmp_path / "d.csv")), 0)
    assert data.labels == ["None of the above", "negative", "positive"]


def test_dropping_shared_texts_that_empties_train_says_so(tmp_path):
    folder = tmp_path / "given"
    folder.mkdir()
    train = _frame({"negative": 10, "positive": 10})
    _write(train, folder / "train.csv")
    _write(train.iloc[:5], folder / "validation.csv")
    _write(train.iloc[5:], folder / "test.csv")  # every train text is held out too
    with pytest.raises(
        FintuneError,
        match=r"data.duplicates: drop removed all 20 rows of the train split, as texts also in "
        r"a later split \(5 shared with the validation split, 15 shared with the test split\)",
    ):
        prepare_data(_data(folder, duplicates="drop"), 0)


def test_dropping_conflicts_or_cleaning_that_empties_train_says_so(tmp_path):
    both = pd.concat([_frame({"negative": 10}), _frame({"negative": 10})], ignore_index=True)
    both.loc[10:, "label"] = "positive"  # every text twice, once with each label
    with pytest.raises(
        FintuneError,
        match=r"data.conflicts: drop removed all 20 rows of the train split: every text there "
        r"has two or more labels \(say 'negative sentence 0'\)",
    ):
        prepare_data(_data(_write(both, tmp_path / "d.csv"), conflicts="drop"), 0)
    urls = pd.DataFrame(
        {"text": [f"https://x.com/{i}" for i in range(20)], "label": ["a", "b"] * 10}
    )
    with pytest.raises(
        FintuneError, match=r"data.cleaning: it empties every text of the train split \(20 rows"
    ):
        prepare_data(_data(_write(urls, tmp_path / "u.csv"), cleaning={"strip_urls": True}), 0)


@pytest.mark.parametrize(
    ("split", "message"),
    [
        (
            {"test": 0.9, "validation": 0.9},  # 200 -> 20 left -> 18 held, 2 left: too few left
            r"data.split.validation: cannot stratify 20 examples of 3 labels with ratio 0.9: "
            r"each side needs at least one example per label \(18 held out, 2 left\); lower the "
            r"ratio, or set",
        ),
        (
            {"test": 0.01},  # 2 held out: too few held
            r"data.split.test: .* \(2 held out, 198 left\); raise the ratio, or set",
        ),
    ],
)
def test_the_stratify_advice_follows_the_side_that_is_short(table, split, message):
    with pytest.raises(FintuneError, match=message):
        prepare_data(_data(table, labels=LABELS, split=split), 0)


@pytest.mark.parametrize(
    ("header", "fields", "message"),
    [
        (
            "text, label",
            {},
            r"data.label_column: column 'label' not in .*; columns are: 'text', ' label'; "
            r"did you mean ' label'\?",
        ),
        (
            "Text,Label",
            {},
            r"data.text_column: column 'text' not in .*; columns are: 'Text', 'Label'; "
            r"did you mean 'Text'\?",
        ),
        ("text,label", {"label_column": "lable"}, r"'text', 'label'; did you mean 'label'\?"),
        ("text,label", {"label_column": "sentiment"}, r"columns are: 'text', 'label'\. Set"),
    ],
)
def test_a_missing_column_lists_the_columns_quoted_with_the_one_meant(
    tmp_path, header, fields, message
):
    path = tmp_path / "d.csv"
    path.write_text(f"{header}\nup,positive\ndown,negative\n", encoding="utf-8")
    with pytest.raises(FintuneError, match=message):
        prepare_data(_data(path, **fields), 0)


@pytest.mark.parametrize(
    ("header", "fields", "message"),
    [
        (
            "sentence,sentiment",
            {},
            r"columns are: 'sentence', 'sentiment'\. Set data.text_column to the column of "
            r"texts$",
        ),
        (
            "text,sentiment",
            {},
            r"columns are: 'text', 'sentiment'\. Set data.label_column to the column of labels$",
        ),
        ("Text,Label", {}, r"did you mean 'Text'\? Set data.text_column: 'Text'$"),
        ("text, label", {}, r"did you mean ' label'\? Set data.label_column: ' label'$"),
    ],
)
def test_a_missing_column_says_which_field_to_set(tmp_path, header, fields, message):
    path = tmp_path / "d.csv"
    path.write_text(f"{header}\nup,positive\ndown,negative\n", encoding="utf-8")
    with pytest.raises(FintuneError, match=message):
        prepare_data(_data(path, **fields), 0)


@pytest.mark.parametrize(("sep", "suffix"), [(";", "csv"), ("|", "csv"), (";", "tsv")])
def test_a_file_separated_by_semicolons_is_named_not_its_header_suggested(tmp_path, sep, suffix):
    """A European Excel export separates fields with ';': the whole header was one column,
    and the error suggested it: "did you mean 'text;label'? Set data.text_column"."""
    path = tmp_path / f"d.{suffix}"
    path.write_text(f"text{sep}label\nup{sep}positive\ndown{sep}negative\n", encoding="utf-8")
    with pytest.raises(FintuneError) as error:
        prepare_data(_data(path), 0)
    message = str(error.value)
    assert "did you mean" not in message
    assert message.endswith(
        f"the header is one column, {f'text{sep}label'!r}: are the fields separated by "
        f"{sep!r}? A csv's are separated by commas, a tsv's by tabs: save the file so"
    )


@pytest.mark.parametrize(
    ("first", "suffix", "end"),
    [
        ("sep=,", "csv", "column names"),
        ("SEP=;", "csv", "commas (it names ';')"),
        ("sep=\t", "tsv", "column names"),
    ],
)
def test_excels_separator_line_is_named_not_its_columns(tmp_path, first, suffix, end):
    """Excel's 'sep=,' first line was read as the header: "column 'text' not in d.csv;
    columns are: 'sep=', 'Unnamed: 1'. Set data.text_column"."""
    sep = "\t" if suffix == "tsv" else ","
    path = tmp_path / f"d.{suffix}"
    path.write_text(f"{first}\ntext{sep}label\nup{sep}positive\ndown{sep}negative\n", "utf-8")
    with pytest.raises(FintuneError) as error:
        prepare_data(_data(path), 0)
    message = str(error.value)
    assert f"line 1: {first!r} is Excel's separator line, not the header" in message
    assert message.endswith(end)


def test_a_file_separated_by_semicolons_with_a_decimal_comma_is_named(tmp_path):
    """A text's decimal comma made its row two fields, and the error blamed the quoting."""
    path = tmp_path / "d.csv"
    path.write_text("text;label\nProfit rose to EUR 13,1 mn;positive\nfell;negative\n")
    with pytest.raises(FintuneError, match=r"line 1: the header is one column, 'text;label': "):
        prepare_data(_data(path), 0)


def test_a_csv_without_a_header_row_is_told_to_add_one_not_to_name_its_first_row(tmp_path):
    """Financial PhraseBank's Kaggle copy has no header: the error suggested the first
    row's sentence as data.text_column, and following it lost that example."""
    path = tmp_path / "all-data.csv"
    rows = [f'{["neutral", "positive"][i % 2]},"Sentence {i} about EUR {i} mn"' for i in range(20)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(FintuneError) as error:
        prepare_data(_data(path), 0)
    assert str(error.value).endswith(
        "; its first line looks like data, not a header: 'neutral' is also a value in its own "
        "column. If the file has no header row, add one (say `label,text`) as its first line: "
        "read as column names, that first example is lost"
    )


def test_a_txt_file_of_sentence_at_label_lines_is_told_to_set_the_fpb_format(tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("Sales rose .@positive\nProfit fell .@negative\n", encoding="utf-8")
    with pytest.raises(
        FintuneError,
        match=r"data.label_column: column 'label' not in .*sentences.txt, train split; columns "
        r"are: 'text'; the lines read 'sentence@label': set data.format: fpb",
    ):
        prepare_data(_data(path), 0)
    path.write_text("Sales rose .\nMail ir@example.com\n", encoding="utf-8")
    with pytest.raises(
        FintuneError,
        match=r"columns are: 'text'; the data holds texts only, no labels \(a txt file is one "
        r"text per line\): give them with their labels as csv, tsv, jsonl or parquet$",
    ):
        prepare_data(_data(path), 0)


def test_texts_that_are_only_a_missing_value_marker_are_counted_and_warned_about(tmp_path):
    from fintune.data import data_warnings

    frame = _frame({"negative": 20, "positive": 20})
    frame.loc[[3, 9, 30], "text"] = ["N/A", " NA ", "N/A"]
    data = prepare_data(_data(_write(frame, tmp_path / "d.csv")), 0)
    placeholders = data.report["placeholder_texts"]
    assert placeholders["count"] == 3 and placeholders["text"] == "N/A"
    assert placeholders["first"].endswith("d.csv, train split, row 4 (line 5)")
    warning = next(n for n in data_warnings(data, _data(tmp_path / "d.csv")) if "marker" in n)
    assert warning.startswith("3 texts are only a missing-value marker such as 'N/A' (first: ")


def test_a_byte_order_mark_read_as_latin1_is_named_not_suggested_as_a_column(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("text,label\nsales rose,positive\n".encode("utf-8-sig"))
    with pytest.raises(FintuneError) as error:
        prepare_data(_data(path, encoding="latin-1"), 0)
    assert str(error.value).endswith(
        "a UTF-8 byte-order mark was read as text: set data.encoding: utf-8"
    )


def test_integer_labels_beyond_int64_keep_their_names(tmp_path):
    """A csv's 18446744073709551615 is read as uint64: it names its class, not a crash."""
    big = 18_446_744_073_709_551_615
    path = tmp_path / "d.csv"
    rows = [f"t{i},{[1, 2, big][i % 3]}" for i in range(90)]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    data = prepare_data(_data(path), 0)
    assert data.labels == ["1", "2", str(big)]
    rows = pd.concat(data.splits.values())
    pairs = zip(rows["text"], rows["label"], strict=True)
    assert all(data.labels[i] == str([1, 2, big][int(t[1:]) % 3]) for t, i in pairs)


def test_files_in_a_data_folder_that_name_no_split_are_warned_about(tmp_path):
    from fintune.data import data_warnings

    for name, prefix in (("train", "a"), ("test", "b"), ("holdout", "c")):
        _write(_frame({"negative": 20, "positive": 20}, prefix), tmp_path / f"{name}.csv")
    (tmp_path / "validation.xlsx").write_bytes(b"PK")  # a split's name, a suffix not read
    (tmp_path / "README.md").write_text("about the data", encoding="utf-8")
    config = _data(tmp_path)
    data = prepare_data(config, 0)
    assert data.report["unread_files"] == ["holdout.csv", "validation.xlsx"]
    (warning,) = [n for n in data_warnings(data, config) if "holdout" in n]
    assert warning.startswith(f"{tmp_path}: holdout.csv and validation.xlsx are not read")
    assert "data.files" in warning
    (tmp_path / "holdout.csv").unlink()
    (tmp_path / "validation.xlsx").unlink()
    assert "unread_files" not in prepare_data(config, 0).report


def test_a_compressed_split_file_in_a_data_folder_is_warned_about(tmp_path):
    """test.csv.gz beside train.csv: its stem is 'test.csv', neither a split's name nor a
    data suffix, so the test split was carved from train.csv without a word."""
    _write(_frame({"negative": 20, "positive": 20}, "a"), tmp_path / "train.csv")
    (tmp_path / "test.csv.gz").write_bytes(b"\x1f\x8b")
    (tmp_path / "train.notes").write_text("how the data was made", encoding="utf-8")
    assert prepare_data(_data(tmp_path), 0).report["unread_files"] == [
        "test.csv.gz",
        "train.notes",
    ]


def test_editor_backups_in_a_data_folder_are_not_warned_about(tmp_path):
    """train.csv~ beside train.csv is an editor's backup, not a split someone meant."""
    _write(_frame({"negative": 20, "positive": 20}, "a"), tmp_path / "train.csv")
    backups = ("train.csv~", "#train.csv#", "train.csv.bak", "test.csv.ORIG", "train.csv.tmp")
    for name in backups:
        (tmp_path / name).write_text("text,label\n", encoding="utf-8")
    for name in ("holdout.csv", "#holdout.csv"):  # not a backup: named
        (tmp_path / name).write_text("text,label\n", encoding="utf-8")
    assert prepare_data(_data(tmp_path), 0).report["unread_files"] == [
        "#holdout.csv",
        "holdout.csv",
    ]


def test_the_stopword_warning_counts_only_texts_that_lose_a_word(tmp_path):
    """The list removes whole words split at spaces: 'not,' and 'up.' stay unless an earlier
    step (letters_only) took the punctuation off. The count said they were lost."""
    from fintune.data import data_warnings

    frame = _frame({"negative": 20, "positive": 20})
    frame.loc[0, "text"] = "Profit did not, in the end, rise"
    frame.loc[1, "text"] = "Shares closed up."
    path = _write(frame, tmp_path / "d.csv")
    config = _data(path, cleaning={"remove_stopwords": True})
    data = prepare_data(config, 0)
    assert "Shares closed up." in [t for f in data.splits.values() for t in f["text"]]
    (warning,) = [n for n in data_warnings(data, config) if "remove_stopwords" in n]
    assert "0 of 40 texts here lose one" in warning
    config = _data(path, cleaning={"remove_stopwords": True, "letters_only": True})
    (warning,) = [n for n in data_warnings(prepare_data(config, 0), config) if "stopw" in n]
    assert "2 of 40 texts here lose one" in warning


def test_removing_stopwords_warns_that_negations_and_directions_go_too(tmp_path):
    from fintune.data import data_warnings

    frame = _frame({"negative": 20, "positive": 20})
    frame.loc[0, "text"] = "Profit did not rise"
    frame.loc[1, "text"] = "Sales went down, costs up"
    path = _write(frame, tmp_path / "d.csv")
    config = _data(path, cleaning={"remove_stopwords": True})
    data = prepare_data(config, 0)
    assert "Profit did rise" in [t for f in data.splits.values() for t in f["text"]]
    (warning,) = [n for n in data_warnings(data, config) if "remove_stopwords" in n]
    assert warning.startswith("data.cleaning.remove_stopwords: scikit-learn's English list ")
    assert "'profit did not rise' becomes 'profit did rise'" in warning
    assert "2 of 40 texts here lose one" in warning
    plain = _data(path)
    assert not [n for n in data_warnings(prepare_data(plain, 0), plain) if "stopwords" in n]
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from fintune.data.prepare import LOST_WORDS

    assert LOST_WORDS <= ENGLISH_STOP_WORDS  # the warning names only words the list removes


def test_an_unlabelled_file_in_data_files_is_fixed_in_data_files(tmp_path):
    """The hint was 'give the test role to a labelled split with data.split_names.test':
    with data.files, a split's file is named in data.files, not chosen by split_names."""
    labels = ["down", "up"] * 10
    pd.DataFrame({"text": [f"t {i}" for i in range(20)], "label": labels}).to_csv(
        tmp_path / "train.csv", index=False
    )
    pd.DataFrame({"text": [f"h {i}" for i in range(6)], "label": [None] * 6}).to_csv(
        tmp_path / "hold.csv", index=False
    )
    files = {"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "hold.csv")}
    with pytest.raises(FintuneError) as caught:
        prepare_data(DataConfig(files=files), 0)
    message = str(caught.value)
    assert "no row of the test split has a label (6 rows: an unlabelled split?)" in message
    assert "split_names" not in message
    assert "point data.files.test at a labelled file, or leave test out of data.files" in message


def test_a_single_file_without_labels_is_not_sent_to_split_names(tmp_path):
    """The hint was 'give the train role to a labelled split with data.split_names.train':
    one file has no splits to choose from."""
    path = tmp_path / "texts.csv"
    pd.DataFrame({"text": [f"t {i}" for i in range(8)], "label": [None] * 8}).to_csv(path)
    with pytest.raises(FintuneError) as caught:
        prepare_data(DataConfig(path=str(path)), 0)
    message = str(caught.value)
    assert "no row of the file has a label (8 rows in the train split: an unlabelled file?)" in (
        message
    )
    assert "split_names" not in message
    assert "data.label_column" in message and "point data.path at a labelled file" in message


def _split_files(tmp_path: Path, roles: tuple[str, ...]) -> dict[str, str]:
    files = {}
    for role in roles:
        rows = {"text": [f"{role} {i}" for i in range(40)], "label": ["down", "up"] * 20}
        files[role] = str(_write(pd.DataFrame(rows), tmp_path / f"{role}.csv"))
    return files


@pytest.mark.parametrize(
    ("roles", "split", "unused"),
    [
        (("train", "test"), {"test": 0.3}, "test"),
        (("train", "validation"), {"validation": 0.25}, "validation"),
        (("train", "validation", "test"), {"test": 0.3, "validation": 0.25}, "test"),
    ],
)
def test_a_split_ratio_the_source_s_own_split_makes_unused_is_warned_of(
    tmp_path, roles, split, unused
):
    """data.split.test: 0.3 on data with its own test split changed nothing, silently."""
    from fintune.data import data_warnings

    config = DataConfig(files=_split_files(tmp_path, roles), split=split)
    data = prepare_data(config, 0)
    assert len(data.splits[unused]) == 40  # the source's own, not a cut
    notes = [n for n in data_warnings(data, config) if n.startswith("data.split.")]
    assert (
        f"data.split.{unused} ({split[unused]}) is not used: the data has its own {unused} "
        f"split; data.split.use_given: false pools the splits and cuts all by data.split"
    ) in notes


def test_a_split_ratio_in_use_or_at_its_default_is_not_warned_of(tmp_path):
    """A resolved config.yaml (every default written out) reruns without the warning; a
    ratio that cut its split is in use."""
    from fintune.data import data_warnings

    for roles, split in ((("train", "test"), {"test": 0.2}), (("train",), {"test": 0.3})):
        config = DataConfig(files=_split_files(tmp_path, roles), split=split)
        notes = data_warnings(prepare_data(config, 0), config)
        assert not [n for n in notes if n.startswith("data.split.")], notes


def test_near_copies_between_splits_are_a_warning_and_leave_the_data_as_it_was(tmp_path):
    """'Profit rose.' in train and 'profit rose' in test leak as much as one text in both,
    but nothing said so: data.duplicates compares texts as written."""
    from fintune.data import data_warnings

    folder = tmp_path / "near"
    folder.mkdir()
    frame = _frame()
    _write(frame, folder / "train.csv")
    copies = frame.iloc[:3].assign(text=lambda f: f["text"].str.upper() + " !")
    others = frame.iloc[:2].assign(text=["another text", "a third text"])
    _write(pd.concat([copies, others]), folder / "test.csv")
    config = _data(folder)
    data = prepare_data(config, 0)
    near = data.report["near_copies"]  # validation is cut from train: a copy may be there
    assert sum(near[pair]["texts"] for pair in ("train/test", "validation/test")) == 3
    assert len(data.splits["test"]) == 5  # nothing dropped
    notes = "\n".join(data_warnings(data, config))
    assert "of the test split is a train text but for case, spacing or punctuation" in notes
    assert "of the test split are a validation text but for case, spacing or" in notes


def test_a_folder_whose_test_file_holds_texts_only_says_how_to_leave_it_out(tmp_path):
    """A Kaggle layout: train.csv with labels, test.csv with texts only. The error blamed
    data.label_column and said 'a txt file is one text per line', and split_names, the one
    way out it named for a folder's splits, could not leave a split out."""
    labels = ["down", "up"] * 10
    train = tmp_path / "train.csv"
    pd.DataFrame({"text": [f"t {i}" for i in range(20)], "label": labels}).to_csv(
        train, index=False
    )
    pd.DataFrame({"text": [f"h {i}" for i in range(6)]}).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(FintuneError) as caught:
        prepare_data(DataConfig(path=str(tmp_path)), 0)
    message = str(caught.value)
    assert "the test split holds texts only, no labels" in message
    assert "txt" not in message
    assert "name a local folder's labelled files in data.files" in message
    as_said = prepare_data(DataConfig(files={"train": str(train)}, split={"test": 0.25}), 0)
    assert len(as_said.splits["test"]) == 5


def test_a_subsample_that_cannot_be_stratified_says_so(tmp_path):
    path = tmp_path / "s.csv"
    pd.DataFrame([{"text": f"t {i}", "label": ["a", "b", "c"][i % 3]} for i in range(300)]).to_csv(
        path, index=False
    )
    n = len(prepare_data(DataConfig(path=str(path)), seed=0).splits["train"])
    config = DataConfig(path=str(path), max_train_samples=n - 1)
    notes = data_warnings(prepare_data(config, seed=0), config)
    assert any(
        "train split's " + str(n - 1) + " examples (data.max_train_samples) are drawn at random"
        in note
        and f"they are {n - 1} of {n}, leaving out 1; stratifying needs at least one per label (3)"
        in note
        and note.count("max_train_samples") == 1  # it named the field twice
        for note in notes
    ), notes
    config = DataConfig(path=str(path), max_train_samples=n // 2)  # stratified: no note
    assert not any("drawn at random" in n for n in data_warnings(prepare_data(config, 0), config))


def test_a_subsample_with_a_single_example_label_says_so(tmp_path):
    folder = tmp_path / "given"
    folder.mkdir()
    rows = [{"text": f"t {i}", "label": "a" if i % 2 else "b"} for i in range(40)]
    rows.append({"text": "the only c", "label": "c"})
    pd.DataFrame(rows).to_csv(folder / "train.csv", index=False)
    test = [{"text": f"u {i}", "label": "abc"[i % 3]} for i in range(30)]
    pd.DataFrame(test).to_csv(folder / "test.csv", index=False)
    pd.DataFrame(test).assign(text=lambda f: "v" + f["text"]).to_csv(
        folder / "validation.csv", index=False
    )
    config = DataConfig(path=str(folder), max_train_samples=20)
    notes = data_warnings(prepare_data(config, seed=0), config)
    assert any(
        "drawn at random, not stratified by label: label 'c' has 1 example in the train split"
        in note
        for note in notes
    ), notes
    quiet = DataConfig(path=str(folder), max_train_samples=20, split={"stratify": False})
    assert not any("drawn at random" in n for n in data_warnings(prepare_data(quiet, 0), quiet))


def test_an_empty_given_split_names_its_source_split_not_a_ratio(tmp_path):
    """A header-only test.csv said 'check data.split.test', a ratio a given split is not
    cut by."""
    folder = _given_splits(tmp_path, leak=0)
    (folder / "test.csv").write_text("text,label\n")
    with pytest.raises(FintuneError) as error:
        prepare_data(_data(folder, labels=LABELS), 0)
    message = str(error.value)
    assert (
        "the test split is empty after preparation: it is the source's own split 'test' "
        f"({folder / 'test.csv'}), which has 0 rows" in message
    )
    assert "data.split_names.test" in message and "data.split.test" not in message
