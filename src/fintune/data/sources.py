"""Read raw tables: local files (csv, tsv, jsonl, parquet, txt, Financial PhraseBank's
`sentence@label` format) or a hub dataset. Each source becomes {split name: DataFrame}.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Collection
from pathlib import Path

import pandas as pd
from pandas.api.types import is_bool_dtype, is_float_dtype, is_integer_dtype

from fintune.errors import FintuneError, relative_note

SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".txt": "txt",
}
# File stems that name a split when a directory holds one file per split.
SPLIT_STEMS = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}


COMPRESSED = {  # how a file starts -> its compression
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"PK\x03\x04": "zip (an Excel workbook is one too)",
}


def _check_not_compressed(path: Path) -> None:
    """A .csv.gz read as text failed as 'not valid utf-8 ... set data.encoding'."""
    with open(path, "rb") as file:
        start = file.read(8)
    kind = next((k for magic, k in COMPRESSED.items() if start.startswith(magic)), None)
    if kind == "bzip2" and not start[3:4].isdigit():  # 'BZh' might start a text
        kind = None
    if kind is not None:
        raise FintuneError(
            f"{path} is compressed ({kind}): fintune reads plain csv, tsv, jsonl, parquet and "
            "txt files; decompress (or export) it first"
        )


def _windows_or_latin1(raw: bytes) -> str:
    """Text that is not UTF-8: Windows-1252 (€, ’, – where latin-1 has invisible controls),
    else latin-1, which decodes any byte (cp1252 leaves five undefined)."""
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _check_line_ends(path: Path, text: str) -> None:
    """Lines ended by a carriage return alone (classic Mac OS) would be one line."""
    if "\n" not in text and len([line for line in text.split("\r") if line.strip()]) > 1:
        raise FintuneError(
            f"{path}: its lines end in a carriage return alone (classic Mac OS line "
            "endings), so it reads as one line; save it with \\n or \\r\\n line endings"
        )


def detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    found = SUFFIX_FORMATS.get(path.suffix.lower())
    if found is None:
        allowed = ", ".join(sorted(SUFFIX_FORMATS))
        raise FintuneError(
            f"{path}: cannot tell the format from the suffix; set data.format "
            f"(csv, tsv, jsonl, parquet, fpb, txt) or use one of {allowed}"
        )
    return found


def read_table(
    path: Path, fmt: str = "auto", encoding: str | None = None, quoting: str = "standard"
) -> pd.DataFrame:
    """One local file as a DataFrame; parse errors name the file and line."""
    if not path.is_file():
        if path.is_dir():
            raise FintuneError(f"data file {path} is a folder; name a file in it")
        if path.exists():  # /dev/null, a pipe: reading it would find nothing or wait
            raise FintuneError(f"data file {path} is not a regular file (a device or a pipe)")
        raise FintuneError(f"data file not found: {path}{relative_note(path)}")
    _check_not_compressed(path)
    fmt = detect_format(path, fmt)
    enc = encoding or "utf-8"
    try:
        if fmt in ("csv", "tsv"):
            quote = csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL
            lines = _check_delimited(path, _bom_aware(enc), fmt, quote)
            options = {
                "sep": "," if fmt == "csv" else "\t",
                "encoding": enc,
                "keep_default_na": False,
                "quoting": quote,
            }
            frame = _booleans_as_written(pd.read_csv(path, **options), path, options)
            frame.attrs["read_csv"] = {"path": str(path), **options}  # for written_text
            return _with_lines(frame, lines)
        if fmt == "parquet":
            _check_parquet_names(path)
            return pd.read_parquet(path)
        raw = path.read_bytes()
        if fmt == "fpb" and encoding is None:  # the original release is latin-1, some copies UTF-8
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                text = _windows_or_latin1(raw)
        else:
            text = raw.decode(_bom_aware(enc))
        _check_line_ends(path, text)
        # split on newlines only: splitlines() also splits inside texts at U+2028, U+0085 ...
        lines = [line.removesuffix("\r") for line in text.split("\n")]
    except UnicodeDecodeError as err:
        raise FintuneError(f"{_undecodable(path, enc, err)}; set data.encoding") from None
    except LookupError:
        raise FintuneError(f"data.encoding: unknown encoding {enc!r}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as err:
        raise FintuneError(f"{path}: cannot read as {fmt}: {err}") from None
    if fmt == "jsonl":
        return _jsonl(path, lines)
    if fmt == "fpb":
        return _fpb(path, lines)
    kept = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    return _with_lines(pd.DataFrame({"text": [line for _, line in kept]}), [n for n, _ in kept])


def _booleans_as_written(frame: pd.DataFrame, path: Path, options: dict) -> pd.DataFrame:
    """pandas reads a column of true/false as booleans, which print as True/False: a label
    must keep the file's own text."""
    flags = [i for i, column in enumerate(frame.columns) if is_bool_dtype(frame[column])]
    if flags:
        text = pd.read_csv(path, **options, dtype=str, usecols=flags)
        for column in text.columns:
            frame[column] = text[column].str.strip()
    return frame


def written_text(frame: pd.DataFrame, column: str, decimals: bool = False) -> pd.Series | None:
    """A csv/tsv column of integers (`decimals`: of decimals) as the file writes them
    ('01', '+1', '4.10'), row for row; None for other formats. Read again (one column: a
    fraction of the first read) only when asked: inferred label names come from it."""
    numeric = is_float_dtype if decimals else is_integer_dtype
    options = frame.attrs.get("read_csv")
    if options is None or not numeric(frame[column]):
        return None
    options = dict(options)
    try:
        text = pd.read_csv(options.pop("path"), **options, dtype=str, usecols=[column])[column]
        text = text.str.strip()
        same = len(text) == len(frame) and (pd.to_numeric(text) == frame[column].to_numpy()).all()
    except (ValueError, OSError):  # the file changed since, or the column was renamed
        return None
    return text if same else None


def ints_written(frame: pd.DataFrame, column: str) -> set[float]:
    """The whole numbers of a float column (1 beside 1.5) that the file writes as
    integers ('1', not '1.0'); empty where that is not known (parquet)."""
    if not is_float_dtype(frame[column]):
        return set()
    if "json_ints" in frame.attrs:
        return {float(v) for v in frame.attrs["json_ints"].get(column, ())}
    options = frame.attrs.get("read_csv")
    if options is None:
        return set()
    options = dict(options)
    try:
        text = pd.read_csv(options.pop("path"), **options, dtype=str, usecols=[column])[column]
    except (ValueError, OSError):  # the file changed since, or the column was renamed
        return set()
    if len(text) != len(frame):
        return set()
    as_int = text.str.strip().str.fullmatch(r"[+-]?\d+").fillna(False).to_numpy(dtype=bool)
    return set(frame[column].to_numpy()[as_int].tolist())


def _undecodable(path: Path, encoding: str, err: UnicodeDecodeError) -> str:
    """Where the file stops being `encoding` text, by line and column: the csv reader
    decodes in chunks, so the error's own position counts from a chunk's start."""
    codec = _bom_aware(encoding)
    raw = path.read_bytes()
    try:
        raw.decode(codec)
    except UnicodeDecodeError as whole:
        if "\n".encode(encoding) == b"\n":  # lines are found by their bytes (not UTF-16)
            line = raw.count(b"\n", 0, whole.start) + 1
            start = raw.rfind(b"\n", 0, whole.start) + 1
            column = len(raw[start : whole.start].decode(codec, errors="replace")) + 1
            return (
                f"{path}, line {line}: not valid {encoding} text "
                f"(byte 0x{raw[whole.start]:02x} at column {column})"
            )
    return f"{path}: not valid {encoding} text ({err.reason})"


def _bom_aware(encoding: str) -> str:
    """UTF-8 read as utf-8-sig: a byte-order mark at the start (Excel, Notepad) is dropped,
    not read as part of the first text or key."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


class Lines(tuple):
    """Each row's line in the file. pandas deep-copies attrs whenever a column is taken,
    which walks a plain tuple item by item (half of preparing a 300,000-row csv); its
    ints never change, so every copy is this one."""

    def __deepcopy__(self, memo: dict) -> Lines:
        return self


class _Ints(frozenset):
    """Never changed, so not copied with attrs (see Lines)."""

    def __deepcopy__(self, memo: dict) -> _Ints:
        return self


def _with_lines(frame: pd.DataFrame, lines: list[int]) -> pd.DataFrame:
    """Record each row's line in the file, so errors can name it: a header, blank lines
    and quoted line breaks make "row N" and "line N" differ."""
    if len(lines) == len(frame):
        frame.attrs["lines"] = Lines(lines)  # pandas copies and compares attrs: keep it a tuple
    return frame


def _row(frame: pd.DataFrame, row: int) -> str:
    """'row N' (from 1, header not counted), with the file's line when the reader kept it."""
    lines = frame.attrs.get("lines")
    return f"row {row}" if lines is None else f"row {row} (line {lines[row - 1]})"


def _check_delimited(path: Path, encoding: str, fmt: str, quoting: int) -> list[int]:
    """pandas reads two kinds of broken rows without a word: a text that opens a quote and
    never closes it runs on through the next lines, rows and all; and when every row has one
    field more than the header (an unquoted comma in each text), the first field quietly
    becomes the index and that part of each text is lost. Python's strict csv reader and a
    field count name the line instead. (A row with fewer fields is read with the missing
    ones empty; a missing label or text is named later.) Returns each data row's first line."""
    delimiter = "," if fmt == "csv" else "\t"
    limit = csv.field_size_limit(2**31 - 1)  # pandas has no limit on a field's length
    try:
        with path.open(encoding=encoding, newline="") as file:
            reader = csv.reader(file, delimiter=delimiter, strict=True, quoting=quoting)
            header, start, rows = None, 1, []
            for record in reader:
                if len(record) > 1 or (record and record[0].strip()):  # pandas skips blank lines
                    if header is None:
                        header, names = len(record), [name.strip() for name in record]
                        _check_excel_sep_line(path, delimiter.join(record), start, delimiter)
                        _check_separator(path, record, fmt)
                        _check_header_names(path, record, start)
                    else:
                        if record[0].strip() == names[0]:
                            _check_not_header(path, record, names, start)
                        rows.append(start)
                    if len(record) > header:  # fewer fields are filled in empty, as pandas does
                        raise FintuneError(
                            f"{path}, line {start}: {_field_count_problem(record, header, fmt)}"
                        )
                start = reader.line_num + 1
    except csv.Error as err:
        raise FintuneError(
            f"{path}, line {start}: a quoted field is malformed: a quote is not closed, or text "
            f"follows the closing quote ({err}, line {reader.line_num}); a text that holds "
            'quotes must be quoted whole, its quotes doubled: """Buy"" rating"; for a file '
            "that does not quote, set data.quoting: none"
        ) from None
    finally:
        csv.field_size_limit(limit)
    return rows


def _check_excel_sep_line(path: Path, line: str, number: int, delimiter: str) -> None:
    """Excel's 'sep=,' first line names the separator; read as the header, it hid the real
    one and the message blamed data.text_column."""
    if match := re.fullmatch(r"sep=(.?)", line.strip(" \r\n"), flags=re.IGNORECASE):
        fix = "delete that line so the file starts with its column names"
        if match[1] not in ("", delimiter):
            kind = "commas" if delimiter == "," else "tabs"
            fix += f", and save the file separated by {kind} (it names {match[1]!r})"
        raise FintuneError(
            f"{path}, line {number}: {match[0]!r} is Excel's separator line, not the header; {fix}"
        )


def _check_separator(path: Path, header: list[str], fmt: str) -> None:
    """A header of one field that holds another separator: the other format, or a European
    Excel export's ';' (checked at the header: a row's decimal comma would otherwise be
    blamed on its quoting)."""
    other, sign, name = ("tsv", "\t", "tabs") if fmt == "csv" else ("csv", ",", "commas")
    if len(header) == 1 and sign in header[0]:
        raise FintuneError(
            f"{path}, line 1: the header is one {fmt} field that holds {name} "
            f"({header[0][:60]!r}); is it {other}? Set data.format: {other}"
        )
    if len(header) == 1 and (sep := next((s for s in ";|" if s in header[0]), None)):
        raise FintuneError(
            f"{path}, line 1: the header is one column, {header[0][:60]!r}: are the fields "
            f"separated by {sep!r}? A csv's are separated by commas, a tsv's by tabs: save "
            "the file so"
        )


def _check_header_names(path: Path, header: list[str], line: int) -> None:
    """pandas reads a repeated column name as a second column 'label.1', without a word."""
    named = [name for name in header if name]  # unnamed columns are pandas' "Unnamed: N"
    repeated = next((name for name in named if named.count(name) > 1), None)
    if repeated is not None:
        raise FintuneError(
            f"{path}, line {line}: the header repeats the column name {repeated!r} "
            f"(columns: {', '.join(map(repr, header))}); give each column its own name"
        )


def _check_parquet_names(path: Path) -> None:
    """pyarrow writes two columns of one name, then fails to read them with a schema dump."""
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    repeated = next((name for name in names if names.count(name) > 1), None)
    if repeated is not None:
        raise FintuneError(
            f"{path}: the column name {repeated!r} appears twice (columns: "
            f"{', '.join(map(repr, names))}); give each column its own name"
        )


def _check_not_header(path: Path, record: list[str], names: list[str], line: int) -> None:
    """Two exports joined (cat a.csv b.csv): the second header is no example of the class
    'label'."""
    if [field.strip() for field in record] == names:
        raise FintuneError(
            f"{path}, line {line}: the row repeats the header ({', '.join(map(repr, names))}): "
            "two files joined? Remove the line"
        )


def _field_count_problem(record: list[str], header: int, fmt: str) -> str:
    fields = f"{len(record)} fields, but the header has {header}"
    if record[-1] == "" and len(record) == header + 1:
        return f"{fields}: a delimiter at the end of the line?"
    if fmt == "csv":
        return f'{fields}; a text that holds a comma must be quoted whole ("Revenue rose, up")'
    return f"{fields}; a text that holds a tab must be quoted whole"


ARRAY_HINT = " (a JSON array? fintune reads JSON Lines: one object per line)"
# half of a UTF-16 pair, which JSON's \ud83d can spell alone (a tweet cut mid-emoji): no
# character, and no UTF-8 encodes it
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _RepeatedKey(Exception):
    pass


def _one_value_per_key(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object, refused when it names a key twice (json.loads keeps the last)."""
    row = dict(pairs)
    if len(row) < len(pairs):
        keys = [key for key, _ in pairs]
        raise _RepeatedKey(next(key for key in keys if keys.count(key) > 1))
    return row


def _jsonl(path: Path, lines: list[str]) -> pd.DataFrame:
    rows, numbers = [], []
    ints: dict[str, set[int]] = {}
    booleans: dict[str, set[int]] = {}  # rows (from 1) where a key holds true/false
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_one_value_per_key)
        except _RepeatedKey as repeated:
            raise FintuneError(
                f"{path}, line {number}: the key {repeated.args[0]!r} appears twice in one "
                "object; JSON keeps only the last, so give each key once"
            ) from None
        except json.JSONDecodeError as err:
            hint = ARRAY_HINT if not rows and line.lstrip().startswith("[") else ""
            raise FintuneError(f"{path}, line {number}: not valid JSON ({err.msg}){hint}") from None
        if not isinstance(row, dict):
            hint = ARRAY_HINT if isinstance(row, list) else ""
            raise FintuneError(f"{path}, line {number}: expected a JSON object per line{hint}")
        # JSON's true/false as written, as a csv's are: Python's str() gives 'True'
        rows.append({k: str(v).lower() if isinstance(v, bool) else v for k, v in row.items()})
        numbers.append(number)
        for key, value in row.items():
            if type(value) is int:
                ints.setdefault(key, set()).add(value)
            if isinstance(value, bool):
                booleans.setdefault(key, set()).add(len(rows))
            if isinstance(value, str) and (half := LONE_SURROGATE.search(value)):
                raise FintuneError(
                    f"{path}, line {number}: the value of {key!r} holds {ascii(half.group())}, "
                    "half of a UTF-16 pair with no other half (text cut mid-emoji?): no "
                    "character; delete it or write the whole character"
                )
    if not rows:  # no columns either: it was blamed on data.text_column
        raise FintuneError(f"{path}: the file is empty (no JSON lines), so it has no examples")
    frame = pd.DataFrame(rows)
    # 1 beside 1.5 becomes the float 1.0: remember it was written 1 (see ints_written)
    floats = {k: _Ints(v) for k, v in ints.items() if k in frame and is_float_dtype(frame[k])}
    if floats:
        frame.attrs["json_ints"] = floats
    if booleans:
        frame.attrs["json_booleans"] = {k: _Ints(v) for k, v in booleans.items()}
    return _with_lines(frame, numbers)


def _fpb(path: Path, lines: list[str]) -> pd.DataFrame:
    """Financial PhraseBank: `sentence@label`, split on the last '@' (sentences contain '@')."""
    texts, labels, numbers = [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        text, sep, label = line.rpartition("@")
        if not sep or not text.strip():
            raise FintuneError(f"{path}, line {number}: expected 'sentence@label', got {line!r}")
        texts.append(text.strip())
        labels.append(label.strip())
        numbers.append(number)
    return _with_lines(pd.DataFrame({"text": texts, "label": labels}), numbers)


def read_directory(
    path: Path,
    fmt: str,
    encoding: str | None,
    quoting: str = "standard",
    named: Collection[str] = (),
) -> dict[str, pd.DataFrame]:
    """A directory with one file per split (train.csv, validation.csv, test.csv, ...),
    each under its role; a file whose name data.split_names gives (dev, holdout) is read
    under that name, for split_names to map."""
    files = split_files(path, fmt, named)
    return {split: read_table(file, fmt, encoding, quoting) for split, file in files.items()}


def split_files(path: Path, fmt: str, named: Collection[str] = ()) -> dict[str, Path]:
    """The split each file of a directory of split files is read as: split -> file."""
    files: dict[str, Path] = {}
    for file in sorted(path.iterdir()):
        split = _split_of(file, fmt, named)
        if split:
            if split in files:
                raise FintuneError(
                    f"{path}: more than one file for the {split} split ({files[split].name} and "
                    f"{file.name}); keep one, or name the files in data.files"
                )
            files[split] = file
    if not files:
        raise FintuneError(
            f"{path}: no split files found; expected files named train, validation (or valid, "
            "dev) and test with a csv/tsv/jsonl/parquet/txt suffix, or name one file in data.path"
            + _hub_layout_hint(path)
        )
    return files


def _hub_layout_hint(path: Path) -> str:
    """A downloaded hub dataset: its splits are shards, data/train-00000-of-00001.parquet,
    which the datasets library reads from the folder (data.hub_id)."""
    for file in sorted([*path.glob("*-of-*.*"), *path.glob("data/*-of-*.*")]):
        if re.fullmatch(r"[\w.]+-\d+-of-\d+", file.stem) and file.suffix in SUFFIX_FORMATS:
            shown = file.relative_to(path).as_posix()
            return (
                f"; its files are laid out as a hub dataset's ({shown}): "
                f"set data.hub_id: {path} in place of data.path to read them"
            )
    return ""


def _split_of(file: Path, fmt: str, named: Collection[str] = ()) -> str | None:
    """The split a file in a directory of split files is read as, if any."""
    split = file.stem if file.stem in named else SPLIT_STEMS.get(file.stem.lower())
    if split and file.is_file() and (fmt != "auto" or file.suffix.lower() in SUFFIX_FORMATS):
        return split
    return None


BACKUP_ENDINGS = ("~", "#", ".bak", ".orig", ".swp", ".tmp")  # #train.csv#: Emacs's


def unread_files(path: Path, fmt: str, named: Collection[str] = ()) -> list[str]:
    """Files of a directory of split files that look like data (a data suffix, or a split's
    name before the first dot) but that `read_directory` passes by: holdout.csv, test.xlsx,
    test.csv.gz. Hidden files and editors' backups (train.csv~, train.csv.bak) are not
    named."""
    return [
        file.name
        for file in sorted(path.iterdir())
        if file.is_file()
        and not file.name.startswith(".")
        and not file.name.lower().endswith(BACKUP_ENDINGS)
        and (
            file.suffix.lower() in SUFFIX_FORMATS or file.name.split(".")[0].lower() in SPLIT_STEMS
        )
        and _split_of(file, fmt, named) is None
    ]


def read_local(
    path: Path,
    fmt: str,
    encoding: str | None,
    quoting: str = "standard",
    named: Collection[str] = (),
) -> dict[str, pd.DataFrame]:
    if path.is_dir():
        return read_directory(path, fmt, encoding, quoting, named)
    if not path.exists():
        raise FintuneError(f"data.path: file or directory not found: {path}{relative_note(path)}")
    return {"train": read_table(path, fmt, encoding, quoting)}


def read_hub(
    hub_id: str, config: str | None, revision: str | None = None, field: str = "data.hub_id"
) -> dict[str, pd.DataFrame]:
    """A dataset from the Hugging Face hub (needs network, or a warm local cache). `field`:
    the config field that named it (data.dataset, for a known dataset's hub copy)."""
    import datasets

    if hub_id.startswith(("/", "./", "../")) and not Path(hub_id).exists():  # no hub id does
        raise FintuneError(f"{field}: no such folder: {hub_id}{relative_note(Path(hub_id))}")
    if Path(hub_id).is_file():
        raise FintuneError(
            f"{field}: {hub_id} is a file; hub_id takes a hub dataset or the folder of one "
            "downloaded. A file of your own is read with data.path"
        )
    try:
        loaded = datasets.load_dataset(hub_id, config, revision=revision)
    except Exception as err:  # the hub client raises many types; all mean "could not load"
        local = Path(hub_id).is_dir()  # a downloaded dataset's folder
        raise FintuneError(
            f"{field}: could not load {hub_id!r}"
            + (f" (config {config!r})" if config else "")
            + (f": {err}" if local else f" from the hub: {err}")
            + _hub_hint(err, field, local)
        ) from None
    frames = {}
    for name, split in loaded.items():
        frame = split.to_pandas()
        for column, feature in split.features.items():  # keep class names, not only ids
            if isinstance(feature, datasets.ClassLabel):
                frame[column] = _class_names(frame[column], feature.names, f"{hub_id}, {name}")
                # the declared classes, in their order: one may have no example
                frame.attrs.setdefault(CLASS_NAMES, {})[column] = list(feature.names)
        frames[name] = frame
    return frames


CLASS_NAMES = "class_names"  # a frame's attrs key: {column: a hub ClassLabel's names}


def _class_names(ids: pd.Series, names: list[str], where: str) -> list[str | None]:
    """A ClassLabel column's ids as its names; -1 marks an unlabelled row (many hub test
    splits): missing, named later. An id past the names is an error naming its row."""
    bad = next((i for i, v in enumerate(ids) if v >= len(names) or v < -1), None)
    if bad is not None:
        raise FintuneError(
            f"{where} split, row {bad + 1}: column {ids.name!r} holds the class id "
            f"{int(ids.iloc[bad])}, but its ClassLabel declares {len(names)} classes (ids 0 to "
            f"{len(names) - 1}: {', '.join(map(repr, names[:5]))}{' ...' if len(names) > 5 else ''}"
            "): fix the data, or the names its ClassLabel declares"
        )
    return [names[int(v)] if v >= 0 else None for v in ids]


def _hub_hint(err: Exception, field: str, local: bool) -> str:
    """What to change, in config terms: the datasets library's advice is Python's."""
    text = str(err)
    if field == "data.hub_id" and "Config name is missing" in text:
        return ". Name one of its configs in data.hub_config."
    if field == "data.hub_id" and re.search(r"BuilderConfig .* not found", text):
        return ". Set data.hub_config to one of those."
    if "load_from_disk" in text:
        return (
            ". It is one Dataset saved with save_to_disk: export it to parquet (to_parquet) "
            "and point data.path at the file."
        )
    offline = isinstance(err, ConnectionError) or re.search(
        r"offline|connect|couldn't reach|timed? ?out|resolve", text, re.I
    )
    return ". Offline? Point data.path at a local copy." if offline and not local else "."
