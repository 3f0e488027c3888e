"""Reading local sources: every file format, split directories, and the local layouts of the
known datasets (tiny fake copies written here, in the same layout as the real ones)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fintune.config.schema import DataConfig
from fintune.data.known import BANKING77_CATEGORIES, KNOWN, load_known
from fintune.data.prepare import prepare_data
from fintune.data.sources import detect_format, read_directory, read_local, read_table
from fintune.errors import FintuneError

ROWS = [
    {"text": "Sales rose 5 %, beating forecasts.", "label": "positive"},
    {"text": "Profit fell.", "label": "negative"},
    {"text": "NA", "label": "neutral"},  # must stay a text, not become missing
]
SHARED_FPB = Path(__file__).resolve().parents[2].parent / "shared/data/financial_phrasebank"


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame[["text", "label"]].to_dict("records")


# --------------------------------------------------------------------------- formats


def test_csv(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    assert _records(read_table(path)) == ROWS


def test_csv_keeps_empty_cells_as_empty_text(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n,neutral\nnull,positive\n", encoding="utf-8")
    frame = read_table(path)
    assert list(frame["text"]) == ["", "null"]


def test_csv_with_utf8_bom(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\nÅland rose,positive\n".encode("utf-8-sig"))
    assert _records(read_table(path)) == [{"text": "Åland rose", "label": "positive"}]


def test_csv_integer_labels_stay_integers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\na,0\nb,2\n", encoding="utf-8")
    assert pd.api.types.is_integer_dtype(read_table(path)["label"])


def test_tsv(tmp_path):
    path = tmp_path / "d.tsv"
    pd.DataFrame(ROWS).to_csv(path, sep="\t", index=False)
    assert _records(read_table(path)) == ROWS


def test_tsv_with_quotes_tabs_and_newlines_in_texts_round_trips(tmp_path):
    path = tmp_path / "d.tsv"
    rows = [
        {"text": 'Profit "beat" estimates', "label": "positive"},
        {"text": "Q3:\tsales up\nQ4: flat", "label": "neutral"},
        {"text": '"Sell" rating kept', "label": "negative"},
    ]
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)  # quotes fields as needed
    assert _records(read_table(path)) == rows


def test_tsv_texts_may_be_longer_than_the_csv_modules_field_limit(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("text\tlabel\n" + "a" * 200_000 + "\tneutral\n", encoding="utf-8")
    assert len(read_table(path)["text"][0]) == 200_000


def test_tsv_text_starting_with_an_unmatched_quote_is_an_error_not_lost_rows(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text(
        'text\tlabel\n"Apple rises after results\tpositive\nShares fell\tnegative\n'
        '"Buy" rating kept\tneutral\n',
        encoding="utf-8",
    )
    with pytest.raises(FintuneError, match=r"d.tsv, line 2: a quoted field is malformed"):
        read_table(path)


def test_a_tsv_that_does_not_quote_is_read_as_written_with_quoting_none(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text(
        'text\tlabel\n"Apple rises after results\tpositive\nShares fell\tnegative\n'
        '"Buy" rating kept, says "CEO"\tneutral\n',
        encoding="utf-8",
    )
    with pytest.raises(FintuneError, match=r"for a file that does not quote, set data.quoting"):
        read_table(path)
    frame = read_local(path, "auto", None, quoting="none")["train"]
    assert frame["text"].tolist() == [
        '"Apple rises after results',
        "Shares fell",
        '"Buy" rating kept, says "CEO"',
    ]
    assert frame["label"].tolist() == ["positive", "negative", "neutral"]
    rows = "".join(f'"Item {i}" noted\t{("negative", "positive")[i % 2]}\n' for i in range(20))
    path.write_text("text\tlabel\n" + rows, encoding="utf-8")
    data = prepare_data(DataConfig(path=str(path), quoting="none"), 0)
    assert sorted(pd.concat(data.splits.values())["text"]) == sorted(
        f'"Item {i}" noted' for i in range(20)
    )


def test_jsonl_texts_may_hold_unicode_line_separators(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"text": f"Q3 up{sep}guidance raised", "label": "positive"} for sep in "\u2028\x85"]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    assert _records(read_table(path)) == rows


def test_a_json_array_file_is_told_to_be_json_lines(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(ROWS, indent=1), encoding="utf-8")
    with pytest.raises(
        FintuneError, match="line 1: not valid JSON .*a JSON array\\? fintune reads"
    ):
        read_table(path)
    path.write_text(json.dumps(ROWS), encoding="utf-8")  # on one line
    with pytest.raises(FintuneError, match="line 1: expected a JSON object .*a JSON array\\?"):
        read_table(path)


def test_jsonl_skips_blank_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [json.dumps(r) for r in ROWS]
    path.write_text(lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n\n", encoding="utf-8")
    assert _records(read_table(path)) == ROWS


def test_jsonl_errors_count_blank_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n{broken\n", encoding="utf-8")
    with pytest.raises(FintuneError, match=r"d\.jsonl, line 3: not valid JSON"):
        read_table(path)


def test_a_jsonl_text_with_half_an_emoji_is_named_with_its_line(tmp_path):
    """JSON can spell half of a UTF-16 pair alone (a tweet cut mid-emoji): it failed with
    pyarrow's UnicodeEncodeError traceback, or (pandas 2) after the model had loaded. A
    whole pair is one character and reads as such."""
    path = tmp_path / "d.jsonl"
    whole = '{"text": "profit \\ud83d\\ude00 up", "label": "positive"}'
    path.write_text(f"{whole}\n" + '{"text": "profit \\ud83d up", "label": "positive"}\n')
    said = r"d\.jsonl, line 2: the value of 'text' holds '\\ud83d', half of a UTF-16 pair"
    with pytest.raises(FintuneError, match=said):
        read_table(path)
    path.write_text(whole + "\n")
    assert read_table(path)["text"].tolist() == ["profit \U0001f600 up"]


def test_json_suffix_reads_as_jsonl(tmp_path):
    path = tmp_path / "d.json"
    path.write_text("\n".join(json.dumps(r) for r in ROWS), encoding="utf-8")
    assert detect_format(path, "auto") == "jsonl"
    assert _records(read_table(path)) == ROWS


def test_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame(ROWS).to_parquet(path)
    assert _records(read_table(path)) == ROWS


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(FintuneError, match=r"d\.parquet: cannot read as parquet"):
        read_table(path)


def test_txt_one_text_per_line(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("first line\n\nsecond @ line\r\n", encoding="utf-8")
    frame = read_table(path)
    assert list(frame.columns) == ["text"]
    assert list(frame["text"]) == ["first line", "second @ line"]


def test_fpb_latin1_crlf_and_at_in_sentence(tmp_path):
    path = tmp_path / "Sentences_50Agree.txt"
    lines = [
        "Ålandsbanken 's profit rose to EUR 5 mn .@positive",
        "Contact investor@example.com for the report .@neutral",
        "Sales fell 3 % in Jyväskylä .@negative ",
        "",
    ]
    path.write_bytes("\r\n".join(lines).encode("latin-1"))
    frame = read_table(path, "fpb")
    assert _records(frame) == [
        {"text": "Ålandsbanken 's profit rose to EUR 5 mn .", "label": "positive"},
        {"text": "Contact investor@example.com for the report .", "label": "neutral"},
        {"text": "Sales fell 3 % in Jyväskylä .", "label": "negative"},
    ]
    assert not any("\r" in t for t in frame["text"])


def test_an_fpb_copy_in_utf8_is_read_as_utf8_not_mojibake(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes("Sales rose to EUR 5 mn in Jyväskylä (€ 5 mn) .@positive\n".encode())
    assert read_table(path, "fpb")["text"][0] == "Sales rose to EUR 5 mn in Jyväskylä (€ 5 mn) ."


def test_an_fpb_copy_saved_by_windows_keeps_its_euro_signs_and_quotes(tmp_path):
    """Not UTF-8, it was read as latin-1, which turns cp1252's €, ’, “ ” and – into
    invisible control characters (U+0080, U+0092 ...), trained on without a word."""
    path = tmp_path / "s.txt"
    text = "Profit rose to 5 €m , the CEO ’s “ best ” year – again .@positive\n"
    path.write_bytes(text.encode("cp1252"))
    assert read_table(path, "fpb")["text"][0] == text.split("@")[0]
    path.write_bytes("Sales in Jyväskylä \x81 rose .@positive\n".encode("latin-1"))  # no cp1252
    assert read_table(path, "fpb")["text"][0] == "Sales in Jyväskylä \x81 rose ."


@pytest.mark.parametrize("fmt", ["fpb", "txt", "jsonl"])
def test_lines_ended_by_a_carriage_return_alone_are_refused_not_read_as_one(tmp_path, fmt):
    """Classic Mac OS line endings: the file was one line, so an fpb file became one
    example and the error blamed the label column."""
    path = tmp_path / f"s.{fmt}"
    lines = {
        "fpb": ["Sales rose@positive", "Sales fell@negative"],
        "txt": ["Sales rose", "Sales fell"],
        "jsonl": ['{"text": "Sales rose", "label": "up"}', '{"text": "fell", "label": "down"}'],
    }[fmt]
    path.write_bytes(("\r".join(lines) + "\r").encode())
    with pytest.raises(FintuneError, match=r"s\.\w+: its lines end in a carriage return alone"):
        read_table(path, fmt)
    path.write_bytes((lines[0] + "\r").encode())  # one line: nothing is lost
    assert len(read_table(path, fmt)) == 1


@pytest.mark.parametrize(
    ("compress", "kind"),
    [("gzip", "gzip"), ("bz2", "bzip2"), ("lzma", "xz"), ("zipfile", "zip")],
)
@pytest.mark.parametrize("fmt", ["auto", "csv", "jsonl"])
def test_a_compressed_file_is_named_not_blamed_on_its_encoding(tmp_path, compress, kind, fmt):
    """A .csv.gz was 'not valid utf-8 text (byte 0x8b ...); set data.encoding'."""
    import bz2
    import gzip
    import lzma
    import zipfile

    raw = b"text,label\nSales rose,positive\n"
    path = tmp_path / "d.csv.gz"
    if compress == "zipfile":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("d.csv", raw)
    else:
        path.write_bytes({"gzip": gzip, "bz2": bz2, "lzma": lzma}[compress].compress(raw))
    with pytest.raises(FintuneError, match=rf"d\.csv\.gz is compressed \({kind}"):
        read_table(path, fmt)
    path.write_bytes(b"BZh is no bzip2\n")  # a text may start so
    assert len(read_table(path, "txt")) == 1


def test_fpb_encoding_can_be_overridden(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes("Kesko ’s sales rose .@positive\n".encode())
    assert read_table(path, "fpb", "utf-8")["text"][0] == "Kesko ’s sales rose ."


def test_fpb_line_without_label_names_the_line(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes(b"Sales rose .@positive\r\n\r\nno label here\r\n")
    with pytest.raises(FintuneError, match=r"s\.txt, line 3: expected 'sentence@label'"):
        read_table(path, "fpb")


def test_fpb_line_with_only_a_label(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes(b"@positive\r\n")
    with pytest.raises(FintuneError, match="line 1"):
        read_table(path, "fpb")


def test_utf8_file_with_latin1_bytes_asks_for_an_encoding(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\nJyväskylä,neutral\n".encode("latin-1"))
    with pytest.raises(FintuneError, match="not valid utf-8 text.*data.encoding"):
        read_table(path)
    assert read_table(path, encoding="latin-1")["text"][0] == "Jyväskylä"


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_a_latin1_byte_deep_in_a_utf8_file_is_named_by_its_line(tmp_path, suffix):
    """The csv reader decodes in chunks: its error's position was within a chunk (178 for a
    byte 70,000 bytes in), naming no place in the file."""
    rows = [("sales rose", "positive")] * 3000 + [("Nestlé sales fell", "negative")]
    path = tmp_path / f"d.{suffix}"
    if suffix == "csv":
        text = "text,label\n" + "".join(f"{t},{label}\n" for t, label in rows)
    else:
        text = "".join(
            json.dumps({"text": t, "label": lb}, ensure_ascii=False) + "\n" for t, lb in rows
        )
    path.write_bytes(text.encode("latin-1"))
    line, column = (3002, 6) if suffix == "csv" else (3001, 16)
    with pytest.raises(
        FintuneError,
        match=rf"d\.{suffix}, line {line}: not valid utf-8 text \(byte 0xe9 at column {column}\); "
        "set data.encoding",
    ):
        read_table(path)


def test_explicit_format_beats_the_suffix(tmp_path):
    path = tmp_path / "d.dat"
    path.write_text("text\tlabel\na\tb\n", encoding="utf-8")
    with pytest.raises(FintuneError, match="cannot tell the format"):
        read_table(path)
    assert _records(read_table(path, "tsv")) == [{"text": "a", "label": "b"}]


def test_missing_file(tmp_path):
    with pytest.raises(FintuneError, match="data file not found"):
        read_table(tmp_path / "none.csv")
    with pytest.raises(FintuneError, match="data.path: file or directory not found"):
        read_local(tmp_path / "none.csv", "auto", None)


def test_a_device_or_a_folder_is_not_called_missing(tmp_path):
    """data.path /dev/null said "data file not found" of a path that is there."""
    with pytest.raises(FintuneError, match=r"/dev/null is not a regular file \(a device"):
        read_local(Path("/dev/null"), "auto", None)
    with pytest.raises(FintuneError, match="is a folder; name a file in it"):
        read_table(tmp_path)


def test_single_file_is_the_train_split(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame(ROWS).to_csv(path, index=False)
    assert list(read_local(path, "auto", None)) == ["train"]


# --------------------------------------------------------------------------- directories


def test_directory_of_split_files(tmp_path):
    for stem in ("training", "dev", "test"):
        pd.DataFrame(ROWS).to_csv(tmp_path / f"{stem}.csv", index=False)
    (tmp_path / "README.md").write_text("not data", encoding="utf-8")
    (tmp_path / "notes.csv").write_text("ignored", encoding="utf-8")
    splits = read_local(tmp_path, "auto", None)
    assert sorted(splits) == ["test", "train", "validation"]
    assert _records(splits["validation"]) == ROWS


def test_directory_mixed_formats(tmp_path):
    pd.DataFrame(ROWS).to_parquet(tmp_path / "train.parquet")
    (tmp_path / "valid.jsonl").write_text(json.dumps(ROWS[0]) + "\n", encoding="utf-8")
    splits = read_directory(tmp_path, "auto", None)
    assert len(splits["train"]) == 3 and len(splits["validation"]) == 1


def test_directory_two_files_for_one_split(tmp_path):
    for name in ("train.csv", "training.csv"):
        pd.DataFrame(ROWS).to_csv(tmp_path / name, index=False)
    with pytest.raises(
        FintuneError, match=r"more than one file for the train split \(train.csv and training.csv\)"
    ):
        read_directory(tmp_path, "auto", None)


def test_directory_without_split_files(tmp_path):
    (tmp_path / "data.csv").write_text("text,label\n", encoding="utf-8")
    with pytest.raises(FintuneError, match="no split files found"):
        read_directory(tmp_path, "auto", None)


# --------------------------------------------------------------------------- known datasets


def _fake_fpb(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    files = KNOWN["financial_phrasebank"].local_files
    lines = {
        "50": [
            "Sales rose .@positive",
            "Profit fell .@negative",
            "The AGM is on Monday .@neutral",
            "Mail ir@example.fi for details .@neutral",
        ],
        "all": ["Sales rose .@positive"],
    }
    for subset, text in lines.items():
        body = "\r\n".join(text) + "\r\n"
        (root / files[subset]["train"]).write_bytes(body.encode("latin-1"))
    return root


def test_known_financial_phrasebank_local(tmp_path):
    root = _fake_fpb(tmp_path / "fpb")
    assert (root / "Sentences_50Agree.txt").is_file()
    frames, labels = load_known("financial_phrasebank", "50", str(root))
    assert labels == ["negative", "neutral", "positive"]
    assert list(frames) == ["train"]
    assert list(frames["train"].columns) == ["text", "label"]
    assert frames["train"]["text"][3] == "Mail ir@example.fi for details ."
    assert list(frames["train"]["label"]) == ["positive", "negative", "neutral", "neutral"]


def test_known_dataset_reads_with_the_given_encoding(tmp_path):
    root = tmp_path / "fpb"
    root.mkdir()
    name = KNOWN["financial_phrasebank"].local_files["50"]["train"]
    (root / name).write_bytes("Jyväskylä sales rose .@positive\r\n".encode())
    frames, _ = load_known("financial_phrasebank", "50", str(root), encoding="utf-8")
    assert frames["train"]["text"][0] == "Jyväskylä sales rose ."


@pytest.mark.parametrize("subset", [None, "50", "50Agree", "50agree"])
def test_known_financial_phrasebank_subset_spellings(tmp_path, subset):
    frames, _ = load_known("financial_phrasebank", subset, str(_fake_fpb(tmp_path / "fpb")))
    assert len(frames["train"]) == 4


def test_known_financial_phrasebank_all_agree(tmp_path):
    frames, _ = load_known("financial_phrasebank", "AllAgree", str(_fake_fpb(tmp_path / "fpb")))
    assert len(frames["train"]) == 1


def test_known_subset_file_missing(tmp_path):
    root = _fake_fpb(tmp_path / "fpb")
    with pytest.raises(FintuneError, match="has no Sentences_66Agree.txt"):
        load_known("financial_phrasebank", "66", str(root))


def test_known_unknown_subset(tmp_path):
    with pytest.raises(FintuneError, match="no subset '60'; allowed: 50, 66, 75, all"):
        load_known("financial_phrasebank", "60", str(tmp_path))


def test_known_path_not_a_directory(tmp_path):
    with pytest.raises(FintuneError, match="directory not found"):
        load_known("financial_phrasebank", None, str(tmp_path / "none"))


def test_known_path_that_is_the_file_names_its_directory(tmp_path):
    """It said 'directory not found' of a file that is there."""
    file = _fake_fpb(tmp_path / "fpb") / "Sentences_50Agree.txt"
    with pytest.raises(
        FintuneError,
        match=rf"{file} is a file; .* holding the dataset's files \(Sentences_50Agree.txt\): "
        rf"set it to {file.parent}$",
    ):
        load_known("financial_phrasebank", "50", str(file))


def test_known_twitter_local_maps_ids_to_names(tmp_path):
    root = tmp_path / "twitter"
    root.mkdir()
    files = KNOWN["twitter_financial_news_sentiment"].local_files["default"]
    # real layout: CSV with header text,label; CRLF records, bare LF inside quoted tweets
    train = (
        'text,label\r\n"$AAPL falls\nafter earnings",0\r\n$TSLA jumps,1\r\nFed meets today,2\r\n'
    )
    (root / files["train"]).write_bytes(train.encode())
    (root / files["validation"]).write_bytes(b"text,label\r\nStocks slide,0\r\n")
    frames, labels = load_known("twitter_financial_news_sentiment", None, str(root))
    assert labels == ["bearish", "bullish", "neutral"]
    assert sorted(frames) == ["train", "validation"]
    assert _records(frames["train"]) == [
        {"text": "$AAPL falls\nafter earnings", "label": "bearish"},
        {"text": "$TSLA jumps", "label": "bullish"},
        {"text": "Fed meets today", "label": "neutral"},
    ]
    assert _records(frames["validation"]) == [{"text": "Stocks slide", "label": "bearish"}]


def _fake_banking77(root: Path, categories: bool = True) -> Path:
    root.mkdir()
    names = ["activate_my_card", "card_arrival", "top_up_failed"]
    if categories:
        (root / BANKING77_CATEGORIES).write_text(json.dumps(names), encoding="utf-8")
    train = [{"text": f"query {i} about {n}", "category": n} for i in range(4) for n in names]
    pd.DataFrame(train).to_csv(root / "train.csv", index=False)
    pd.DataFrame(train[:3]).to_csv(root / "test.csv", index=False)
    return root


def test_known_banking77_local_uses_categories_json(tmp_path):
    root = _fake_banking77(tmp_path / "banking77")
    frames, labels = load_known("banking77", None, str(root))
    assert labels == ["activate_my_card", "card_arrival", "top_up_failed"]
    assert sorted(frames) == ["test", "train"]
    assert len(frames["train"]) == 12 and len(frames["test"]) == 3
    assert frames["train"]["label"][1] == "card_arrival"


def test_known_banking77_without_categories(tmp_path):
    root = _fake_banking77(tmp_path / "banking77", categories=False)
    with pytest.raises(FintuneError, match="has no categories.json"):
        load_known("banking77", None, str(root))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('["a", "b",]', "categories.json: not valid UTF-8 JSON"),
        ('{"a": 0, "b": 1}', "categories.json: expected a JSON list of label names"),
        # was read as the labels a, a, b: three classes, the first never trained
        ('["a", "b", "a"]', "categories.json: the label name 'a' appears twice; list each"),
    ],
)
def test_known_banking77_with_a_bad_categories_file(tmp_path, content, message):
    root = _fake_banking77(tmp_path / "banking77")
    (root / BANKING77_CATEGORIES).write_text(content, encoding="utf-8")
    with pytest.raises(FintuneError, match=message):
        load_known("banking77", None, str(root))


def test_known_dataset_copy_without_its_label_column_is_named(tmp_path):
    root = tmp_path / "twitter"
    root.mkdir()
    files = KNOWN["twitter_financial_news_sentiment"].local_files["default"]
    (root / files["train"]).write_text("text,label\nup,1\n", encoding="utf-8")
    (root / files["validation"]).write_text("text,lbl\ndown,0\n", encoding="utf-8")
    with pytest.raises(
        FintuneError, match=r"sent_valid.csv has no column 'label' \(columns: 'text', 'lbl'\)"
    ):
        load_known("twitter_financial_news_sentiment", None, str(root))


def test_known_unknown_name():
    with pytest.raises(FintuneError, match="unknown dataset 'fpb'; known: banking77"):
        load_known("fpb", None, None)


@pytest.mark.parametrize(
    ("name", "meant"),
    [("financial_phrase", "financial_phrasebank"), ("Banking77", "banking77")],
)
def test_a_mistyped_known_dataset_name_gets_a_suggestion(name, meant):
    with pytest.raises(
        FintuneError,
        match=rf"data.dataset: unknown dataset '{name}' \(did you mean '{meant}'\?\); known: ",
    ):
        load_known(name, None, None)


def test_known_dataset_through_prepare(tmp_path):
    root = _fake_banking77(tmp_path / "banking77")
    config = DataConfig(dataset="banking77", path=str(root), split={"validation": 0.25})
    data = prepare_data(config, 0)
    assert data.labels == ["activate_my_card", "card_arrival", "top_up_failed"]
    assert len(data.splits["test"]) == 3  # the given test split
    assert len(data.splits["validation"]) == 3 and len(data.splits["train"]) == 9
    assert "banking77" in data.report["source"]


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_FPB.is_dir(), reason="no shared copy of Financial PhraseBank")
def test_real_financial_phrasebank_50agree():
    frames, labels = load_known("financial_phrasebank", "50", str(SHARED_FPB))
    assert len(frames["train"]) == 4846
    config = DataConfig(dataset="financial_phrasebank", subset="50", path=str(SHARED_FPB))
    report = prepare_data(config, 42).report["duplicates"]["train"]
    assert report["rows"] == 4846
    assert report["duplicate_rows"] == 6
    assert report["conflicting_texts"] == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "d.csv",
            "text,label\nRevenue rose, beating it,positive\nCosts grew, margins fell,negative\n",
            r"d.csv, line 2: 3 fields, but the header has 2; a text that holds a comma",
        ),
        (
            "d.tsv",
            "text\tlabel\nRevenue rose\tbeat\tpositive\nCosts grew\tfell\tnegative\n",
            r"d.tsv, line 2: 3 fields, but the header has 2; a text that holds a tab",
        ),
        (
            "d.csv",
            'text,label\n"Buy rating,positive\nSell says "hold",negative\nFlat,neutral\n',
            r"d.csv, line 2: a quoted field is malformed",
        ),
        (
            "d.csv",
            "text,label\nfine,positive\nup,positive,\n",
            r"d.csv, line 3: 3 fields, but the header has 2: a delimiter at the end of the line\?",
        ),
    ],
)
def test_csv_rows_that_pandas_would_cut_or_merge_silently_are_named(
    tmp_path, name, content, message
):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(FintuneError, match=message):
        read_table(path)


def test_quoted_csv_texts_with_commas_quotes_and_newlines_are_read_whole(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(  # blank and whitespace-only lines are skipped, as pandas skips them
        'text,label\n"Revenue rose, beating ""estimates""",positive\n\n   \n"two\nlines",neutral\n',
        encoding="utf-8",
    )
    frame = read_table(path)
    assert frame["text"].tolist() == ['Revenue rose, beating "estimates"', "two\nlines"]


def test_a_csv_row_with_fewer_fields_reads_them_as_empty(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label,note\nup,positive,x\ndown,negative\n", encoding="utf-8")
    assert read_table(path)["note"].tolist() == ["x", ""]


# --------------------------------------------------------------------------- line numbers


def test_errors_name_the_file_line_past_blank_lines_and_quoted_line_breaks(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        'text,label\n"Sales rose,\nstrongly",positive\n\nProfit fell,negative\nFlat,bullish\n',
        encoding="utf-8",
    )
    assert read_table(path).attrs["lines"] == (2, 5, 6)
    config = DataConfig(path=str(path), labels=["negative", "neutral", "positive"])
    with pytest.raises(FintuneError, match=r"row 3 \(line 6\): label 'bullish'"):
        prepare_data(config, 0)


def test_a_known_datasets_local_copy_names_the_file_line(tmp_path):
    root = _fake_fpb(tmp_path / "fpb")
    file = root / KNOWN["financial_phrasebank"].local_files["50"]["train"]
    file.write_bytes(file.read_bytes() + b"\r\nRates held .@\r\n")
    config = DataConfig(dataset="financial_phrasebank", path=str(root))
    with pytest.raises(FintuneError, match=r"row 5 \(line 6\): empty or missing label"):
        prepare_data(config, 0)


def test_txt_and_parquet_lines(tmp_path):
    txt = tmp_path / "d.txt"
    txt.write_text("one\n\ntwo\n", encoding="utf-8")
    assert read_table(txt).attrs["lines"] == (1, 3)
    parquet = tmp_path / "d.parquet"
    pd.DataFrame(ROWS).to_parquet(parquet)
    assert "lines" not in read_table(parquet).attrs  # no lines: errors say "row N" only


def test_taking_a_column_does_not_copy_the_line_numbers(tmp_path, monkeypatch):
    """pandas deep-copies attrs on every column taken: a plain tuple of one line per row
    was copied item by item each time, half of preparing a 300,000-row csv."""
    import copy

    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"t{i},a\n" for i in range(1000)))
    frame = read_table(path)

    def walked(*args):
        raise AssertionError("the line numbers were copied item by item")

    monkeypatch.setitem(copy._deepcopy_dispatch, tuple, walked)
    assert frame["label"].attrs["lines"] is frame.attrs["lines"]
    assert frame.attrs["lines"][:3] == (2, 3, 4)


# --------------------------------------------------------------------------- data review


@pytest.mark.parametrize(("suffix", "sep"), [(".csv", ","), (".tsv", "\t")])
def test_a_column_name_repeated_in_the_header_is_named(tmp_path, suffix, sep):
    path = tmp_path / f"d{suffix}"
    path.write_text(
        "\n\n" + sep.join(["text", "label", "label"]) + "\n" + sep.join(["up", "pos", "neg"]),
        encoding="utf-8",
    )
    with pytest.raises(
        FintuneError,
        match=rf"d{suffix}, line 3: the header repeats the column name 'label' \(columns: "
        r"'text', 'label', 'label'\); give each column its own name",
    ):
        read_table(path)


def test_unnamed_columns_are_not_repeated_names(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label,,\nup,pos,,\n", encoding="utf-8")
    assert _records(read_table(path)) == [{"text": "up", "label": "pos"}]


def test_a_key_repeated_in_a_jsonl_object_is_named_with_its_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"text": "up", "label": "pos"}\n\n{"text": "down", "label": "neg", "label": "neu"}\n',
        encoding="utf-8",
    )
    with pytest.raises(
        FintuneError, match=r"d.jsonl, line 3: the key 'label' appears twice in one object"
    ):
        read_table(path)


@pytest.mark.parametrize(
    ("name", "content", "fmt", "encoding", "first"),
    [
        ("d.jsonl", '{"text": "Åland rose", "label": "pos"}\n', "auto", None, "Åland rose"),
        ("d.jsonl", '{"text": "Åland rose", "label": "pos"}\n', "auto", "UTF8", "Åland rose"),
        ("d.txt", "Åland rose\nProfit fell\n", "auto", None, "Åland rose"),
        ("s.txt", "Åland rose@positive\r\n", "fpb", None, "Åland rose"),
        ("s.txt", "Åland rose@positive\r\n", "fpb", "utf-8", "Åland rose"),
    ],
)
def test_a_utf8_byte_order_mark_is_not_part_of_the_first_text(
    tmp_path, name, content, fmt, encoding, first
):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8-sig"))
    assert read_table(path, fmt, encoding)["text"][0] == first


@pytest.mark.parametrize("under", ["", "data/"])
def test_a_folder_laid_out_like_a_hub_dataset_is_pointed_to_hub_id(tmp_path, under):
    """A downloaded hub dataset keeps its splits as data/train-00000-of-00001.parquet:
    data.path on it said only 'no split files found', though data.hub_id reads it."""
    (tmp_path / under).mkdir(exist_ok=True)
    for split in ("train", "test"):
        pd.DataFrame(ROWS).to_parquet(tmp_path / f"{under}{split}-00000-of-00001.parquet")
    with pytest.raises(FintuneError) as error:
        read_local(tmp_path, "auto", None)
    assert str(error.value).endswith(
        f"; its files are laid out as a hub dataset's ({under}test-00000-of-00001.parquet): "
        f"set data.hub_id: {tmp_path} in place of data.path to read them"
    )
    # as told: path and hub_id together were refused ('give either path or hub_id')
    DataConfig(hub_id=str(tmp_path))


def test_a_parquet_file_that_repeats_a_column_name_is_named(tmp_path):
    """pyarrow can write two columns of one name; reading failed with pyarrow's schema dump
    ('Multiple matches for FieldRef.Name(label) in text: string ...')."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [pa.array(["up", "down"]), pa.array(["a", "b"]), pa.array(["x", "y"])]
    pq.write_table(
        pa.Table.from_arrays(columns, names=["text", "label", "label"]), tmp_path / "d.parquet"
    )
    with pytest.raises(FintuneError) as error:
        read_table(tmp_path / "d.parquet")
    assert str(error.value) == (
        f"{tmp_path / 'd.parquet'}: the column name 'label' appears twice (columns: 'text', "
        "'label', 'label'); give each column its own name"
    )


@pytest.mark.parametrize("suffix", ["csv", "tsv"])
def test_a_header_repeated_inside_the_data_is_named(tmp_path, suffix):
    """Two exports joined (cat a.csv b.csv): the second header was read as an example,
    text 'text' of the class 'label', trained on or refused as 'label 'label' has only 1
    example'."""
    sep = "," if suffix == "csv" else "\t"
    rows = "".join(f"t{i}{sep}{'ab'[i % 2]}\n" for i in range(4))
    path = tmp_path / f"d.{suffix}"
    path.write_text(f"text{sep}label\n{rows} text {sep}label\n{rows}", encoding="utf-8")
    with pytest.raises(FintuneError) as error:
        read_table(path)
    assert str(error.value) == (
        f"{path}, line 6: the row repeats the header ('text', 'label'): two files joined? "
        "Remove the line"
    )


@pytest.mark.parametrize("given", [["0", "1", "2"], ["Bearish", "Bullish", "Neutral"]])
def test_known_dataset_labels_given_by_the_files_values_are_refused_naming_its_names(
    tmp_path, given
):
    """data.labels ['0', '1', '2'] was refused as "row 1 (line 2): label 'bearish' is not in
    the label map", where line 2 holds 0 (found in review)."""
    from fintune.config.schema import DataConfig
    from fintune.data.prepare import prepare_data

    root = tmp_path / "twitter"
    root.mkdir()
    files = KNOWN["twitter_financial_news_sentiment"].local_files["default"]
    rows = "".join(f"tweet number {i},{i % 3}\n" for i in range(60))
    (root / files["train"]).write_text("text,label\n" + rows)
    (root / files["validation"]).write_text("text,label\n" + rows.replace("tweet", "post"))
    known = {"dataset": "twitter_financial_news_sentiment", "path": str(root)}
    with pytest.raises(FintuneError) as error:
        prepare_data(DataConfig(**known, labels=given), 0)
    assert str(error.value) == (
        "data.labels: twitter_financial_news_sentiment's labels are bearish, bullish, neutral "
        "(its files' 0 as bearish, 1 as bullish, 2 as neutral), and data.labels does not "
        "name 'bearish', 'bullish', 'neutral': list the dataset's names, in the order wanted "
        "(or leave data.labels out)"
    )
    reordered = DataConfig(**known, labels=["neutral", "bullish", "bearish"])
    assert prepare_data(reordered, 0).labels == ["neutral", "bullish", "bearish"]
