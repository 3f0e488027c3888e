"""Labels inferred from the data: spellings of one class that differ in Unicode form are an
error naming a row of each, as those that differ in case or spacing are."""

from __future__ import annotations

import unicodedata

import pandas as pd
import pytest

from fintune.config.schema import DataConfig
from fintune.data.prepare import prepare_data
from fintune.errors import FintuneError

COMPOSED = unicodedata.normalize("NFC", "négatif")
DECOMPOSED = unicodedata.normalize("NFD", "négatif")


@pytest.mark.parametrize(
    "first, second, shown",
    [
        (COMPOSED, DECOMPOSED, r"'ne\u0301gatif' and 'n\xe9gatif'"),
        ("positive", "positive\u200b", r"'positive' and 'positive\u200b'"),
        ("positive", "Ｐｏｓｉｔｉｖｅ", r"'positive' and '\uff30\uff4f"),
    ],
)
def test_labels_differing_only_in_unicode_form_are_named_with_a_row_of_each(
    tmp_path, first, second, shown
):
    """'négatif' with its accent composed and decomposed, or 'positive' with a zero-width
    space, looked alike but were two classes, silently."""
    labels = [first, "positif", second]
    path = tmp_path / "d.csv"
    frame = pd.DataFrame({"text": [f"texte {i}" for i in range(60)], "label": labels * 20})
    frame.to_csv(path, index=False, encoding="utf-8")
    with pytest.raises(FintuneError) as error:
        prepare_data(DataConfig(path=str(path)), 0)
    message = str(error.value)
    assert message.startswith(f"data.labels: the labels {shown}")
    assert "differ only in case, spacing, Unicode form or invisible characters" in message
    assert f"{path}, train split, row 1 (line 2)" in message
    assert f"{path}, train split, row 3 (line 4)" in message
    given = prepare_data(DataConfig(path=str(path), labels=labels, split={"stratify": False}), 0)
    assert given.labels == labels  # when meant, say so


@pytest.mark.parametrize("given", [None, ["1.0", "1.5", "2.0"]])
def test_a_split_of_half_step_ratings_holding_only_whole_ones_is_read_by_name(tmp_path, given):
    """Whether labels are class positions was decided per split: a test file of ratings
    1.0 and 2.0 (beside 1.5 in train) was read as positions 1 and 2, so its 1.0 rows
    became class '1.5', silently."""
    ratings = {"train": [1.0, 1.5, 2.0] * 4, "validation": [1.0, 1.5, 2.0], "test": [1.0, 2.0]}
    files = {}
    for role, values in ratings.items():
        files[role] = str(tmp_path / f"{role}.csv")
        texts = [f"{role} review {i}" for i in range(len(values))]
        pd.DataFrame({"text": texts, "label": values}).to_csv(files[role], index=False)
    data = prepare_data(DataConfig(files=files, labels=given), 0)
    assert data.labels == ["1.0", "1.5", "2.0"]
    test = data.splits["test"]
    assert [data.labels[i] for i in test.sort_values("text")["label"]] == ["1.0", "2.0"]


def test_number_labels_written_as_text_are_ordered_by_value_as_a_csv_orders_them(tmp_path):
    """A JSONL's "10" sorted before "2" as text, so its ids (and every table's rows) were in
    another order than the same numbers in a csv."""
    rows = [{"text": f"t {i}", "label": str(i % 12)} for i in range(240)]
    pd.DataFrame(rows).to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    in_jsonl = prepare_data(DataConfig(path=str(tmp_path / "d.jsonl")), 0).labels
    assert in_jsonl == [str(i) for i in range(12)]
    assert in_jsonl == prepare_data(DataConfig(path=str(tmp_path / "d.csv")), 0).labels
    ratings = [
        {"text": f"t {i}", "label": ["1", "1.5", "10", "2", "-0.5"][i % 5]} for i in range(200)
    ]
    pd.DataFrame(ratings).to_json(tmp_path / "r.jsonl", orient="records", lines=True)
    labels = prepare_data(DataConfig(path=str(tmp_path / "r.jsonl")), 0).labels
    assert labels == ["-0.5", "1", "1.5", "2", "10"]
    names = [{"text": f"t {i}", "label": ["b2", "a10", "a2"][i % 3]} for i in range(90)]
    pd.DataFrame(names).to_json(tmp_path / "n.jsonl", orient="records", lines=True)
    assert prepare_data(DataConfig(path=str(tmp_path / "n.jsonl")), 0).labels == ["a10", "a2", "b2"]


@pytest.mark.parametrize("labels", [None, ["4.1", "4.10", "4.2"]])
def test_one_decimal_written_two_ways_in_a_csv_is_an_error_naming_both(tmp_path, labels):
    """A csv reads '4.1' and '4.10' as the number 4.1: the class '4.10' vanished from
    inferred labels without a word, and with data.labels listing both, every '4.10' row
    was trained as '4.1' (a warning said '4.10' had no training example)."""
    rows = ["text,label"]
    for i in range(20):
        rows += [f"alpha text {i},4.1", f"beta text {i},4.10", f"gamma text {i},4.2"]
    path = tmp_path / "sections.csv"
    path.write_text("\n".join(rows) + "\n")
    said = r"the labels '4.1' and '4.10' are the number 4.1 written two ways .*line 3"
    with pytest.raises(FintuneError, match=said):
        prepare_data(DataConfig(path=str(path), labels=labels), 0)
    path.write_text(path.read_text().replace("4.10", "4.3"))  # one spelling each: fine
    assert prepare_data(DataConfig(path=str(path)), 0).labels == ["4.1", "4.2", "4.3"]


@pytest.mark.parametrize("given", [["2.0", "1.0", "0.0"], ["1.0", "2.0", "0.0"]])
def test_whole_decimal_labels_listed_as_the_file_writes_them_map_by_name(tmp_path, given):
    """A float column's 0.0, 1.0, 2.0 (as pandas writes one) with data.labels ["2.0", "1.0",
    "0.0"] were read as positions: the 0.0 rows trained as class '2.0' and the 2.0 rows as
    '0.0', without a word (found in review); ["2", "1", "0"] mapped by name."""
    path = tmp_path / "ratings.csv"
    written = ["0.0", "1.0", "2.0"]
    path.write_text("text,label\n" + "".join(f"review {i},{written[i % 3]}\n" for i in range(90)))
    data = prepare_data(DataConfig(path=str(path), labels=given, split={"stratify": False}), 0)
    assert data.labels == given
    for frame in data.splits.values():
        for text, label in zip(frame["text"], frame["label"], strict=True):
            assert data.labels[label] == written[int(text.split()[1]) % 3], text
