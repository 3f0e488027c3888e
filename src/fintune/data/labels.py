"""Labels: the label set inferred from the data where data.labels does not give it (its
spellings checked), every row checked for a label (an unlabelled split said as such), and
each label mapped to its id.
"""

from __future__ import annotations

import re
import unicodedata
from itertools import islice
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_float_dtype, is_integer_dtype

from fintune.data.sources import _row, ints_written, written_text
from fintune.errors import FintuneError

# pandas' usual markers of a missing value, kept as text (csv/tsv are read without them),
# matched whole and in any case ('none', 'NULL'): as a label each means "no label", unless
# data.labels lists it
MISSING_MARKERS = frozenset(
    {"na", "n/a", "#n/a", "#na", "#n/a n/a", "<na>", "nan", "-nan", "null", "none"}
)


def is_missing_marker(value: str, labels: list[str] | None = None) -> bool:
    """A whole value that marks a missing one, unless `labels` (data.labels) lists it."""
    key = value.strip().casefold()
    return key in MISSING_MARKERS and key not in {name.casefold() for name in labels or ()}


def _infer_labels(frames: dict[str, pd.DataFrame], column: str, where: dict[str, str]) -> list[str]:
    """`where`: each role's place for messages ('train.csv, train split')."""
    values = pd.concat([f[column] for f in frames.values()])
    if values.empty:  # no rows at all (an integer column of an empty parquet file): said later
        return []
    if _holds_ids(values):
        ids = sorted({int(v) for v in values})
        names = _id_names(frames, column, where)
        # ids from 0 are class positions; other integers (-1/0/1, ratings 1-5) are names
        if ids[0] != 0:
            return [names[i] for i in ids]
        n_absent = ids[-1] + 1 - len(ids)  # counted, not listed: an id may be 10**12
        if n_absent:
            present = set(ids)
            absent = list(islice((i for i in range(ids[-1]) if i not in present), 6))
            role, frame = next((r, f) for r, f in frames.items() if (f[column] == ids[-1]).any())
            row = int(np.flatnonzero((frame[column] == ids[-1]).to_numpy())[0]) + 1
            shown = ", ".join(map(str, absent[:5])) + (" ..." if len(absent) > 5 else "")
            raise FintuneError(
                f"data.labels: the integer labels run from 0 to {ids[-1]} ({ids[-1]} first in "
                f"{where[role]}, {_row(frame, row)}), but {n_absent} of those ids never "
                f"occur ({shown}): a mistyped label? If some classes have no examples, list "
                "every class in data.labels"
            )
        return [names[i] for i in ids]
    ints = set().union(*(ints_written(f, column) for f in frames.values()))
    names = _in_label_order({_label_name(v, ints) for v in values})
    _check_spellings(frames, column, names, where)
    return names


def _id_names(
    frames: dict[str, pd.DataFrame], column: str, where: dict[str, str]
) -> dict[int, str]:
    """Each integer label's name as the file writes it: pandas reads a csv's '01' as the
    number 1, yet the label is '01'. One number written two ways ('1', '01') is an error."""
    seen: dict[int, tuple[str, str]] = {}
    for role, frame in frames.items():
        numbers = frame[column].to_numpy()  # not cast to int64: a csv's uint64 would wrap
        text = written_text(frame, column)
        written = numbers if text is None else text.to_numpy()
        pairs = pd.DataFrame({"number": numbers, "name": written})
        for row in pairs.drop_duplicates().index:
            number = int(pairs.at[row, "number"])
            name = str(number) if text is None else str(pairs.at[row, "name"])  # 1.0: '1'
            _one_spelling(seen, number, name, f"{where[role]}, {_row(frame, row + 1)}")
    return {number: name for number, (name, _) in seen.items()}


def _one_spelling(seen: dict, number: float, name: str, at: str) -> None:
    """`name` is how row `at` writes `number`; `seen`: the first spelling of each number."""
    first = seen.setdefault(number, (name, at))
    if first[0] != name:
        shown = number if isinstance(number, int) else f"{number:.15g}"
        raise FintuneError(
            f"data.labels: the labels {first[0]!r} and {name!r} are the number {shown} "
            f"written two ways ({first[0]!r}: {first[1]}; {name!r}: {at}); a csv reads them "
            "as one class: write one spelling in the data, or names that are not numbers "
            "if they are different classes"
        )


def check_one_spelling_per_number(
    frames: dict[str, pd.DataFrame], column: str, where: dict[str, str]
) -> None:
    """A csv reads a column of decimals as numbers, so '4.1' and '4.10' (section numbers,
    say) became one class without a word, whatever data.labels listed; as '1' and '01'
    are, that is an error."""
    seen: dict[float, tuple[str, str]] = {}
    for role, frame in frames.items():
        text = written_text(frame, column, decimals=True)
        if text is None:
            continue
        pairs = pd.DataFrame({"number": frame[column].to_numpy(), "name": text.to_numpy()})
        for row in pairs.drop_duplicates().index:
            number, name = float(pairs.at[row, "number"]), str(pairs.at[row, "name"])
            _one_spelling(seen, number, name, f"{where[role]}, {_row(frame, row + 1)}")


def _check_spellings(
    frames: dict[str, pd.DataFrame], column: str, names: list[str], where: dict[str, str]
) -> None:
    """Inferred labels that look like one class written two ways: 'Positive' and
    'positive', 'négatif' with its accent composed and decomposed, 'positive' with a
    zero-width space; or ids ('0', '1') beside names ('negative')."""
    seen: dict[str, str] = {}
    for name in names:
        key = _spelling_key(name)
        if key in seen:
            first = seen[key]
            how, show = "case or spacing", repr
            if _spelling_key(first, forms=False) != _spelling_key(name, forms=False):
                # they may print alike: shown by their code points
                how, show = "case, spacing, Unicode form or invisible characters", ascii
            raise FintuneError(
                f"data.labels: the labels {show(first)} and {show(name)} differ only in {how} "
                f"({show(first)}: {_first_row(frames, column, first, where)}; {show(name)}: "
                f"{_first_row(frames, column, name, where)}); write one spelling in the data, "
                "or list both in data.labels if they are different classes"
            )
        seen[key] = name
    numbers = [name for name in names if re.fullmatch(r"[+-]?\d+", name)]
    # 1, 1.5, 2: a rating in half steps, numbers all
    words = [name for name in names if not re.fullmatch(r"[+-]?\d+(\.\d+)?", name)]
    if numbers and words:
        raise FintuneError(
            f"data.labels: the labels mix integers ({', '.join(map(repr, numbers[:5]))}) and "
            f"names ({', '.join(map(repr, words[:5]))}): {numbers[0]!r} in "
            f"{_first_row(frames, column, numbers[0], where)}, {words[0]!r} in "
            f"{_first_row(frames, column, words[0], where)}; ids and names for the same "
            "classes? Write one kind in the data, or list every label in data.labels"
        )


def _spelling_key(name: str, forms: bool = True) -> str:
    """A label but for case and spacing and, with `forms`, Unicode form (NFKC) and invisible
    format characters (a zero-width space)."""
    if forms:
        name = "".join(
            c for c in unicodedata.normalize("NFKC", name) if unicodedata.category(c) != "Cf"
        )
    return " ".join(name.split()).casefold()


def _first_row(
    frames: dict[str, pd.DataFrame], column: str, label: str, where: dict[str, str]
) -> str:
    for role, frame in frames.items():
        hits = np.flatnonzero([label in (_label_name(v), str(v).strip()) for v in frame[column]])
        if len(hits):
            return f"{where[role]}, {_row(frame, int(hits[0]) + 1)}"
    return ", ".join(where.values())


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _in_label_order(names: set[str]) -> list[str]:
    """Names in order: by value where every one is a number ('2' before '10', as a csv's
    numbers are ordered; ratings '1', '1.5', '2'), else as text."""
    if all(_NUMBER.fullmatch(name) for name in names):
        return sorted(names, key=lambda name: (float(name), name))
    return sorted(names)


def _label_name(value: Any, ints: set[float] | None = None) -> str:
    """A label's name: a float's as the file writes it (1, not 1.0, beside 1.5), where
    `ints` (the whole numbers written as integers) says; with None, as if written so."""
    if isinstance(value, float) and value.is_integer() and (ints is None or value in ints):
        return str(int(value))
    return str(value).strip()


def _holds_ids(values: pd.Series) -> bool:
    """Integer label ids, also when a format stored them as floats (1.0, 2.0)."""
    if is_integer_dtype(values):
        return True
    return is_float_dtype(values) and bool((values == values.round()).all())


def _labels_are_ids(frames: dict[str, pd.DataFrame], column: str) -> bool:
    """Integer labels (or whole floats) in every split. Decided over all splits at once, as
    _infer_labels decides: a split of half-step ratings that holds only 1.0 and 2.0 is read
    by name like the others, not as class positions 1 and 2."""
    return _holds_ids(pd.concat([f[column] for f in frames.values()]))


def _integers_name_labels(frames: dict[str, pd.DataFrame], column: str, labels: list[str]) -> bool:
    """Integer labels (`_labels_are_ids`, which the caller has decided) that are all names in
    `labels` ("-1", "0", "1") map by name, else by position. Decided over every split at
    once, so all are read the same way."""
    names = {int(v) for f in frames.values() for v in f[column].unique()}
    return bool(names) and names <= set(_numbered(labels))


def _numbered(labels: list[str]) -> dict[int, str]:
    """The labels that are whole numbers, by their number: a csv reader reads the label
    "01" as 1, which must still find "01" (the label written "1", if both are listed), and
    a float column's "2.0" as 2.0, which must find "2.0", not position 2."""
    out: dict[int, str] = {}
    for name in labels:
        whole = re.fullmatch(r"([+-]?\d+)(\.0*)?", name.strip())
        number = int(whole[1]) if whole else None
        if number is not None and (number not in out or str(number) == name):
            out[number] = name
    return out


def _check_labels_present(
    frame: pd.DataFrame, column: str, where: str, labels: list[str] | None, given_as: str
) -> None:
    for row, value in enumerate(frame[column], start=1):
        if not pd.api.types.is_scalar(value):  # a list or dict; None and pd.NA are scalars
            raise FintuneError(
                f"{where}, {_row(frame, row)}: label in column {column!r} is a "
                f"{type(value).__name__} ({value!r}); a label must be one text or number"
            )
        if _no_label(value):
            raise FintuneError(
                f"{where}, {_row(frame, row)}: empty or missing label in column {column!r}"
                + _unlabelled_split(frame[column], where, labels, given_as)
            )
        if isinstance(value, float) and np.isinf(value):  # 'inf' in a csv, Infinity in json
            raise FintuneError(
                f"{where}, {_row(frame, row)}: label {value!r} in column {column!r} is no "
                "class: a label is a name or an integer id"
            )
        if isinstance(value, str) and is_missing_marker(value, labels):
            raise FintuneError(
                f"{where}, {_row(frame, row)}: empty or missing label in column {column!r} "
                f"({value!r} marks a missing value; if it is a label, list it in data.labels)"
                + _unlabelled_split(frame[column], where, labels, given_as)
            )


def _no_label(value: Any) -> bool:
    return (
        value is None
        or (not isinstance(value, str) and pd.isna(value))
        or (isinstance(value, str) and not value.strip())
    )


def _unlabelled_split(
    values: pd.Series, where: str, labels: list[str] | None, given_as: str
) -> str:
    """A split with no label at all (a hub test split's -1s): said as such, with the way
    round it, rather than as one row's fault. `given_as`: as `_given_as` says."""
    if not all(
        _no_label(v) or (isinstance(v, str) and is_missing_marker(v, labels)) for v in values
    ):
        return ""
    role = where.rsplit(", ", 1)[-1].removesuffix(" split")
    if given_as == "file":
        return (
            f"; no row of the file has a label ({len(values)} rows in the {role} split: an "
            f"unlabelled file?); name the labels' column in data.label_column, or point "
            "data.path at a labelled file"
        )
    said = f"; no row of the {role} split has a label ({len(values)} rows: an unlabelled split?); "
    return said + unlabelled_split_fix(role, given_as)


def unlabelled_split_fix(role: str, given_as: str) -> str:
    """How to do without an unlabelled split of several (`given_as`: not 'file')."""
    if given_as == "splits":
        fix = f"give the {role} role to a labelled split with data.split_names.{role}"
        if role != "train":
            fix += (
                ", or name a local folder's labelled files in data.files (a role left out "
                f"is cut from train: data.split.{role})"
            )
        return fix
    fix = f"point data.files.{role} at a labelled file"
    if role != "train":
        fix += f", or leave {role} out of data.files to cut it from train (data.split.{role})"
    return fix


def _label_ids(
    frame: pd.DataFrame,
    column: str,
    labels: list[str],
    as_ids: bool,
    by_name: bool,
    where: str,
    labels_given: bool = False,
) -> list[int]:
    """`as_ids` and `by_name`: as _labels_are_ids and _integers_name_labels decided over
    every split. `labels_given`: the map is data.labels as written (else a known dataset's)."""
    values = frame[column]
    index = {name: i for i, name in enumerate(labels)}
    if as_ids and by_name:
        numbered = _numbered(labels)
        values, as_ids = values.map(lambda v: numbered[int(v)]), False
    out = []
    for row, value in enumerate(values, start=1):
        if as_ids and 0 <= int(value) < len(labels):
            out.append(int(value))
        elif not as_ids and _label_name(value) in index:
            out.append(index[_label_name(value)])
        elif not as_ids and str(value).strip() in index:  # 1.0, as a float was named before
            out.append(index[str(value).strip()])
        elif isinstance(value, (bool, np.bool_)) and str(value).lower() in index:
            out.append(index[str(value).lower()])  # parquet's True as csv and jsonl name it
        else:
            kind = "label id" if as_ids else "label"
            hint = _not_in_map_hint(as_ids, labels_given, len(labels))
            raise FintuneError(
                f"{where}, {_row(frame, row)}: {kind} {value!r} is not in the label map "
                f"{labels}{hint}"
            )
    return out


def _not_in_map_hint(as_ids: bool, labels_given: bool, n_labels: int) -> str:
    """The way out for a label missing from the map: the user's own data.labels lacks it,
    or a known dataset's labels do (then data.labels can replace them)."""
    if as_ids:
        if labels_given:
            return f"; integer labels are positions in data.labels, which names {n_labels}"
        return "; integer labels are positions in data.labels: set data.labels to name every id"
    if labels_given:
        return "; add it to data.labels, or correct the row"
    return "; set data.labels to the full label order"
