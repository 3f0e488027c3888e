"""The real hub-loading code, run on a local folder (datasets.load_dataset reads both)."""

import pandas as pd
from datasets import ClassLabel, Dataset, Features, Value

from fintune.config.schema import DataConfig
from fintune.data import prepare_data
from fintune.data.sources import read_hub


def _hub_like_folder(tmp_path):
    features = Features({"text": Value("string"), "label": ClassLabel(names=["down", "up"])})
    for split, n in (("train", 40), ("test", 10)):
        rows = {"text": [f"{split} item {i}" for i in range(n)], "label": [i % 2 for i in range(n)]}
        Dataset.from_dict(rows, features=features).to_parquet(tmp_path / f"{split}.parquet")
    return tmp_path


def test_read_hub_keeps_class_names(tmp_path):
    frames = read_hub(str(_hub_like_folder(tmp_path)), None)
    assert set(frames) == {"train", "test"}
    assert isinstance(frames["train"], pd.DataFrame)
    assert set(frames["train"]["label"]) == {"down", "up"}


def test_hub_source_prepares_like_any_other(tmp_path):
    config = DataConfig(hub_id=str(_hub_like_folder(tmp_path)), labels=["down", "up"])
    data = prepare_data(config, seed=1)
    assert len(data.splits["test"]) == 10
    assert len(data.splits["train"]) + len(data.splits["validation"]) == 40


def test_a_missing_text_from_the_hub_is_named_not_read_as_the_word_none(monkeypatch):
    import pytest

    from fintune.data import known
    from fintune.errors import FintuneError

    frames = {"train": pd.DataFrame({"text": ["$AAPL up", None], "label": [1, 0]})}
    monkeypatch.setattr(known, "read_hub", lambda *args, **kwargs: frames)
    with pytest.raises(FintuneError, match=r"train split, row 2: no text \(nothing in column"):
        prepare_data(DataConfig(dataset="twitter_financial_news_sentiment"), seed=0)


def test_unlabelled_hub_rows_are_named_not_a_crash(tmp_path):
    import pytest

    from fintune.errors import FintuneError

    features = Features({"text": Value("string"), "label": ClassLabel(names=["down", "up"])})
    for split, labels in (("train", [0, 1] * 20), ("test", [-1] * 10)):  # -1: no label
        rows = {"text": [f"{split} item {i}" for i in range(len(labels))], "label": labels}
        Dataset.from_dict(rows, features=features).to_parquet(tmp_path / f"{split}.parquet")
    # the whole split unlabelled (many hub test splits): said, not only row 1
    with pytest.raises(
        FintuneError,
        match=r"test split, row 1: empty or missing label in column 'label'; no row of the "
        r"test split has a label \(10 rows: an unlabelled split\?\); give the test role to "
        "a labelled split with data.split_names.test",
    ):
        prepare_data(DataConfig(hub_id=str(tmp_path)), seed=0)


def test_a_hub_split_called_dev_is_the_validation_split(monkeypatch):
    from fintune.data import prepare

    def split(name, n):
        return pd.DataFrame(
            {"text": [f"{name} {i}" for i in range(n)], "label": ["a", "b"] * (n // 2)}
        )

    frames = {"train": split("train", 20), "dev": split("dev", 6), "test": split("test", 4)}
    monkeypatch.setattr(prepare, "read_hub", lambda *args, **kwargs: frames)
    data = prepare_data(DataConfig(hub_id="someone/data"), seed=0)
    assert [len(data.splits[r]) for r in ("train", "validation", "test")] == [20, 6, 4]
    assert set(data.splits["validation"]["text"]) == set(frames["dev"]["text"])


def test_an_unlabelled_row_of_a_known_hub_dataset_is_missing_not_a_class(monkeypatch):
    import pytest

    from fintune.data import known
    from fintune.errors import FintuneError

    frames = {"train": pd.DataFrame({"text": ["$AAPL up", "$TSLA ?"], "label": ["up", None]})}
    monkeypatch.setattr(known, "read_hub", lambda *args, **kwargs: frames)
    with pytest.raises(FintuneError, match="train split, row 2: empty or missing label"):
        prepare_data(DataConfig(dataset="banking77"), seed=0)


def test_a_known_dataset_asks_the_hub_for_its_config_and_pinned_revision(monkeypatch):
    """Financial PhraseBank's hub repo holds a loading script that datasets>=4 will not run:
    its config name and the parquet conversion branch must reach load_dataset."""
    import datasets

    from fintune.data.known import load_known

    asked = []
    features = Features({"sentence": Value("string"), "label": ClassLabel(names=["n", "u", "p"])})
    table = Dataset.from_dict({"sentence": ["Sales rose ."], "label": [2]}, features=features)

    def load_dataset(hub_id, config, revision=None):
        asked.append((hub_id, config, revision))
        return {"train": table}

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    frames, labels = load_known("financial_phrasebank", "75", None)
    assert asked == [("takala/financial_phrasebank", "sentences_75agree", "refs/convert/parquet")]
    assert frames["train"].to_dict("list") == {"text": ["Sales rose ."], "label": ["p"]}
    assert labels == ["negative", "neutral", "positive"]


def test_split_names_naming_a_split_the_hub_dataset_lacks_lists_those_it_has(monkeypatch):
    import pytest

    from fintune.data import prepare
    from fintune.errors import FintuneError

    frame = pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]})
    monkeypatch.setattr(prepare, "read_hub", lambda *a, **k: {"train": frame, "dev": frame})
    with pytest.raises(
        FintuneError,
        match=r"data.split_names.test: someone/data has no split 'testing'; it has: "
        r"dev, train$",
    ):
        prepare_data(DataConfig(hub_id="someone/data", split_names={"test": "testing"}), seed=0)


def test_an_unused_hub_split_s_warning_names_every_default_role_name(monkeypatch):
    """It said 'roles are train, validation (valid, val, dev) and test', leaving out
    'training', which is read as train too."""
    from fintune.data import data_warnings, prepare

    frames = {
        name: pd.DataFrame({"text": [f"{name} {i}" for i in range(40)], "label": ["a", "b"] * 20})
        for name in ("training", "holdout")
    }
    monkeypatch.setattr(prepare, "read_hub", lambda *args, **kwargs: frames)
    config = DataConfig(hub_id="someone/data")
    notes = data_warnings(prepare_data(config, seed=0), config)
    assert (
        "someone/data: its split 'holdout' (40 rows) is not used: no role takes it (roles are "
        "train (training), validation (valid, val, dev) and test, in any case); to use it, "
        "give it a role in data.split_names"
    ) in notes


def test_a_known_dataset_the_hub_cannot_give_names_data_dataset(monkeypatch):
    """With only `dataset: financial_phrasebank` set, the offline error named data.hub_id,
    a field the config does not have."""
    import datasets
    import pytest

    from fintune.data.known import load_known
    from fintune.errors import FintuneError

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(FintuneError, match=r"^data.dataset: could not load 'takala/.*data.path"):
        load_known("financial_phrasebank", "50", None)


def test_a_local_hub_folder_that_is_not_there_or_not_readable_is_not_blamed_on_the_hub(
    tmp_path, monkeypatch
):
    """A missing folder and a folder the datasets library could not read were both said
    as 'could not load ... from the hub: ... Offline?'."""
    import pytest

    from fintune.errors import FintuneError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FintuneError, match=r"data.hub_id: no such folder: \./nope \(relative"):
        read_hub("./nope", None)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "train.parquet").write_bytes(b"not parquet")
    with pytest.raises(FintuneError) as caught:
        read_hub(str(tmp_path / "broken"), None)
    assert "could not load" in str(caught.value)
    assert "from the hub" not in str(caught.value) and "Offline?" not in str(caught.value)


def test_a_known_hub_copy_without_its_columns_is_named_not_a_key_error(monkeypatch):
    """twitter_financial_news_sentiment's hub copy is not pinned: a renamed column was a
    bare KeyError 'text'."""
    import datasets
    import pytest

    from fintune.errors import FintuneError

    renamed = datasets.DatasetDict({"train": Dataset.from_dict({"tweet": ["a"], "label": [0]})})
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: renamed)
    with pytest.raises(
        FintuneError,
        match=r"data.dataset: the hub copy of twitter_financial_news_sentiment .* has no column "
        r"'text' in its train split \(columns: 'tweet', 'label'\)",
    ):
        prepare_data(DataConfig(dataset="twitter_financial_news_sentiment"), seed=0)


def test_an_encoding_for_a_known_dataset_read_from_the_hub_is_refused():
    """It was accepted and never read: the datasets library reads the hub copy's files."""
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="encoding is read only with a local copy"):
        DataConfig(dataset="financial_phrasebank", encoding="latin-1")
    DataConfig(dataset="financial_phrasebank", path="fpb", encoding="latin-1")


def test_a_hub_id_naming_a_file_says_a_file_is_read_with_data_path(tmp_path):
    """It went to the hub and came back 'Couldn't find any data file ... Offline?'."""
    import pytest

    from fintune.errors import FintuneError

    pd.DataFrame({"text": ["a", "b"], "label": ["up", "down"]}).to_csv(tmp_path / "d.csv")
    with pytest.raises(FintuneError, match=r"d.csv is a file; .* read with data.path") as caught:
        read_hub(str(tmp_path / "d.csv"), None)
    assert "Offline?" not in str(caught.value)


def _fails_with(monkeypatch, error):
    import datasets

    def load(*args, **kwargs):
        raise error

    monkeypatch.setattr(datasets, "load_dataset", load)


def test_a_hub_error_that_is_not_a_connection_gets_config_advice_not_offline(monkeypatch):
    """Every hub error ended 'Offline? Point data.path at a local copy', and the datasets
    library's own advice was Python's (load_dataset('x', 'small'))."""
    import pytest

    from fintune.errors import FintuneError

    cases = [
        (ValueError("Config name is missing. Pick one among: ['a', 'b']"), "data.hub_config"),
        (ValueError("BuilderConfig 'x' not found. Available: ['a']"), "data.hub_config to one"),
        (FileNotFoundError("Please use load_from_disk instead."), "export it to parquet"),
        (ConnectionError("no network"), "Offline? Point data.path at a local copy"),
    ]
    for error, advice in cases:
        _fails_with(monkeypatch, error)
        with pytest.raises(FintuneError) as caught:
            read_hub("owner/name", None)
        assert advice in str(caught.value)
        assert ("Offline?" in str(caught.value)) == isinstance(error, ConnectionError)


def test_the_source_names_the_subset_or_hub_config_read(monkeypatch, tmp_path):
    """FPB's 50 and 75 subsets were both 'financial_phrasebank (takala/...)' in report.md's
    Source line and in messages, and a hub dataset's config was left out."""
    import datasets

    from fintune.data import known

    labels = ["negative", "neutral", "positive"]
    rows = {"sentence": [f"Sales moved {i} ." for i in range(60)], "label": labels * 20}
    monkeypatch.setattr(known, "read_hub", lambda *args, **kwargs: {"train": pd.DataFrame(rows)})
    data = prepare_data(DataConfig(dataset="financial_phrasebank", subset="75agree"), seed=0)
    assert data.report["source"] == "financial_phrasebank subset 75 (takala/financial_phrasebank)"
    folder = _hub_like_folder(tmp_path)
    real, asked = datasets.load_dataset, []

    def load(hub_id, config, revision=None):
        asked.append((config, revision))
        return real(hub_id)

    monkeypatch.setattr(datasets, "load_dataset", load)
    data = prepare_data(DataConfig(hub_id=str(folder), hub_config="main"), seed=1)
    assert data.report["source"] == f"{folder} (config main)"
    pinned = DataConfig(hub_id=str(folder), hub_revision="refs/convert/parquet")
    data = prepare_data(pinned, seed=1)  # a hub dataset had no revision to pin
    assert data.report["source"] == f"{folder} (revision refs/convert/parquet)"
    assert asked == [("main", None), (None, "refs/convert/parquet")]


def test_a_classlabel_gives_the_labels_in_its_order_a_class_with_no_example_kept(tmp_path):
    """The labels were inferred from the values: alphabetical ('down', 'up'), and a declared
    class with no example dropped without a word."""
    from fintune.data.prepare import data_warnings

    names = ["up", "flat", "down"]
    features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
    for split, n in (("train", 40), ("test", 10)):
        rows = {"text": [f"{split} item {i}" for i in range(n)], "label": [0, 2] * (n // 2)}
        Dataset.from_dict(rows, features=features).to_parquet(tmp_path / f"{split}.parquet")
    config = DataConfig(hub_id=str(tmp_path))
    data = prepare_data(config, seed=1)
    assert data.labels == names
    assert "label 'flat' has no training example" in " ".join(data_warnings(data, config))
    given = prepare_data(DataConfig(hub_id=str(tmp_path), labels=["down", "up"]), seed=1)
    assert given.labels == ["down", "up"]  # data.labels still decides


def test_a_classlabel_id_past_its_names_is_named_not_a_value_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pytest

    from fintune.errors import FintuneError

    features = Features({"text": Value("string"), "label": ClassLabel(names=["down", "up"])})
    table = Dataset.from_dict({"text": ["a", "b"] * 5, "label": [0, 1] * 5}, features).data.table
    broken = table.set_column(1, "label", pa.array([0, 1, 0, 7] + [1] * 6, pa.int64()))
    pq.write_table(broken.replace_schema_metadata(table.schema.metadata), tmp_path / "t.parquet")
    with pytest.raises(
        FintuneError,
        match=r"train split, row 4: column 'label' holds the class id 7, but its ClassLabel "
        r"declares 2 classes \(ids 0 to 1: 'down', 'up'\)",
    ):
        read_hub(str(tmp_path), None)
