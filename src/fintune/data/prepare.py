"""From `data:` config to train/validation/test tables of (text, label id).

Order: read source -> pick columns -> map labels -> clean -> report (and optionally drop)
duplicates and conflicting labels -> split (given, or stratified by ratio with the seed)
-> optional subsampling -> checks -> fingerprint. Every check runs here, before any model
is loaded, and names the file, split, row or field at fault.
"""

from __future__ import annotations

import difflib
import hashlib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from fintune.config.schema import DataConfig, SplitConfig
from fintune.data.clean import make_cleaner, remove_stopwords
from fintune.data.known import KNOWN, check_given_labels, load_known
from fintune.data.labels import (
    _check_labels_present,
    _infer_labels,
    _integers_name_labels,
    _label_ids,
    _labels_are_ids,
    check_one_spelling_per_number,
    is_missing_marker,
    unlabelled_split_fix,
)
from fintune.data.near_copies import SPLIT_PAIRS, near_copies
from fintune.data.sources import (
    CLASS_NAMES,
    SPLIT_STEMS,
    SUFFIX_FORMATS,
    _row,
    read_hub,
    read_local,
    read_table,
    split_files,
    unread_files,
)
from fintune.errors import FintuneError, relative_note

ROLES = ("train", "validation", "test")


# words of scikit-learn's stopword list that carry a sentiment's sign or a move's direction
LOST_WORDS = frozenset(
    {"not", "no", "nor", "never", "cannot", "without", "against", "up", "down", "more", "less"}
    | {"above", "below", "over", "under", "few", "least", "most", "off", "out"}
)


@dataclass
class PreparedData:
    splits: dict[str, pd.DataFrame]
    """role -> DataFrame with columns text (str) and label (int id into labels), and, when
    data.cleaning changed the texts, original_text (the text before cleaning)."""
    labels: list[str]
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> dict[str, Any]:
        return fingerprint(self.splits, self.labels)


def prepare_data(config: DataConfig, seed: int) -> PreparedData:
    sources, known_labels, origin, files = _read(config)
    frames = _assign_roles(sources, config, origin)
    taken = [id(frame) for frame in frames.values()]
    unused = {name: len(f) for name, f in sources.items() if id(f) not in taken}
    # which source split plays each role: data.json's other keys name roles only, so under
    # split_names {test: holdout} "holdout" was nowhere and `test` meant two files
    split_sources = {
        role: next(name for name, f in sources.items() if f is frame)
        for role, frame in frames.items()
    }
    # a row's message names the file it is in, not every file of the data
    where = {role: f"{files.get(split_sources[role], origin)}, {role} split" for role in frames}
    given_as = _given_as(config)
    for role, frame in frames.items():
        _check_columns(frame, config, where[role], role)
        _check_labels_present(frame, config.label_column, where[role], config.labels, given_as)
    check_one_spelling_per_number(frames, config.label_column, where)
    if config.dataset and config.labels:
        check_given_labels(config.dataset, config.labels, known_labels, frames)
    labels = (
        config.labels
        or known_labels
        or _declared_labels(sources, config.label_column)
        or _infer_labels(frames, config.label_column, where)
    )
    if len(labels) == 1:  # none: no rows, named below
        raise FintuneError(
            f"data: the training data has one label ({labels[0]!r}); a classifier needs at "
            f"least two: is data.label_column ({config.label_column!r}) the right column?"
        )
    as_ids = _labels_are_ids(frames, config.label_column)
    by_name = as_ids and _integers_name_labels(frames, config.label_column, labels)
    placeholders = _placeholder_texts(frames, config.text_column, where)
    frames = {
        role: _to_examples(frame, config, labels, as_ids, by_name, where[role])
        for role, frame in frames.items()
    }
    if not config.split.use_given:  # pooled only now, so errors name the file's own rows
        # in one order, so the same files split alike however data.files lists them
        pooled = [frames[role] for role in ROLES if role in frames]
        frames = {"train": pd.concat(pooled, ignore_index=True)}
    report: dict[str, Any] = {"source": origin, "source_splits": sorted(frames)}
    if config.split.use_given:
        report["split_sources"] = dict(sorted(split_sources.items()))
    else:  # pooled, then cut by the ratios: no role is its source split any more
        report["pooled_sources"] = sorted(split_sources.values())
    if placeholders:
        report["placeholder_texts"] = placeholders
    if unused:
        report["unused_splits"] = unused
    folder = Path(config.path or "")
    named = set(config.split_names.values())
    if _reads_folder(config) and (unread := unread_files(folder, config.format, named)):
        report["unread_files"] = unread

    cleaner = make_cleaner(config.cleaning)
    if cleaner:
        emptied, example = 0, None
        for role, frame in frames.items():
            frame["original_text"] = frame["text"]  # the user's, for predictions_*.csv
            frame["text"] = frame["text"].map(cleaner)
            keep = frame["text"].str.len() > 0
            if len(frame) and not keep.any():
                raise FintuneError(
                    f"data.cleaning: it empties every text of the {role} split ({len(frame)} "
                    f"rows, source {origin}); check data.cleaning"
                )
            emptied += int((~keep).sum())
            if example is None and not keep.all():
                example = frame["original_text"][~keep].iloc[0]
            frames[role] = frame[keep].reset_index(drop=True)
        report["emptied_by_cleaning"] = emptied
        if example is not None:
            report["emptied_example"] = example

    frames, report["duplicates"] = _duplicates_and_conflicts(frames, config)
    split_seed = seed if config.split.seed is None else config.split.seed
    splits = _split(frames, config, labels, split_seed, origin)
    splits, unstratified = _subsample(splits, config, labels, split_seed)
    if unstratified and config.split.stratify:
        report["unstratified_subsamples"] = unstratified
    report["shared_texts"] = _shared_texts(splits)
    if variants := _unicode_variants(splits):
        report["unicode_variants"] = variants
    if near := near_copies(splits):
        report["near_copies"] = near
    for role in ROLES:
        if len(splits.get(role, ())) == 0 and config.split.use_given and role in split_sources:
            given = split_sources[role]  # not cut by a ratio: data.split.<role> is not read
            raise FintuneError(
                f"data: the {role} split is empty after preparation: it is the source's own "
                f"split {given!r} ({where[role].rpartition(', ')[0]}), which has "
                f"{len(sources[given])} rows; give the {role} role another split "
                f"(data.split_names.{role}) or pool the splits (data.split.use_given: false)"
            )
        if len(splits.get(role, ())) == 0:
            raise FintuneError(
                f"data: the {role} split is empty after preparation "
                f"(source {origin}); check data.split.{role if role != 'train' else 'test'} "
                "and the files"
            )
    in_train = set(splits["train"]["label"])
    if len(in_train) == 1:
        raise FintuneError(
            f"data: the train split has one label ({labels[in_train.pop()]!r}) in its "
            f"{len(splits['train'])} examples; a classifier needs examples of at least two "
            f"(source {origin})"
        )
    for role in ROLES:
        # a label no split trains on is said once, as missing from train
        expected = range(len(labels)) if role == "train" else sorted(in_train)
        present = set(splits[role]["label"])
        if missing := [labels[i] for i in expected if i not in present]:
            report[f"labels_missing_from_{role}"] = missing
    return PreparedData(splits=splits, labels=labels, report=report)


_DEFAULT_SPLIT = SplitConfig().model_dump()


def data_warnings(data: PreparedData, config: DataConfig) -> list[str]:
    """What the report records and a user should hear before training: texts in two splits
    (leakage), texts that cleaning emptied, and labels with no training, validation or
    test example."""
    notes = []
    if placeholders := data.report.get("placeholder_texts"):
        notes.append(
            f"{placeholders['count']} texts are only a missing-value marker such as "
            f"{placeholders['text']!r} (first: {placeholders['first']}): they are trained on "
            "as that text; remove those rows if the text is missing"
        )
    if unread := data.report.get("unread_files"):
        names = " and ".join([", ".join(unread[:-1]), unread[-1]] if len(unread) > 1 else unread)
        notes.append(
            f"{config.path}: {names} {'are' if len(unread) > 1 else 'is'} not read: a folder's "
            "files are read by their split names (train or training, validation, valid, val "
            "or dev, test) and a csv/tsv/jsonl/json/parquet/txt suffix; to use another file, "
            "give its name a role in data.split_names ({test: holdout}) or name each split's "
            "file in data.files"
        )
    for name, rows in data.report.get("unused_splits", {}).items():
        how = (
            f"data.split_names: {config.split_names}"
            if config.split_names
            else "roles are train (training), validation (valid, val, dev) and test, in any case"
        )
        where = config.path or config.hub_id or config.dataset
        notes.append(
            f"{where}: its split {name!r} ({rows} rows) is not used: no role takes it ({how}); "
            "to use it, give it a role in data.split_names"
        )
    for role in ("test", "validation"):
        ratio = getattr(config.split, role)
        # a changed ratio only: a run's config.yaml writes the default out, and reruns quietly
        if role in data.report.get("source_splits", ()) and ratio != _DEFAULT_SPLIT[role]:
            notes.append(
                f"data.split.{role} ({ratio}) is not used: the data has its own {role} split; "
                "data.split.use_given: false pools the splits and cuts all by data.split"
            )
    if config.cleaning.remove_stopwords:
        texts = [t for frame in data.splits.values() for t in frame["original_text"]]
        # the list removes whole words split at spaces ('not,' stays): as the steps before
        # it (letters_only, lowercase, ...) leave them
        steps = {"remove_stopwords": False, "lemmatize": False}
        before = make_cleaner(config.cleaning.model_copy(update=steps)) or str.strip
        hit = sum(any(w.lower() in LOST_WORDS for w in before(t).split()) for t in texts)
        notes.append(
            "data.cleaning.remove_stopwords: scikit-learn's English list removes negations "
            f"and direction words ({', '.join(sorted(LOST_WORDS))}): 'profit did not rise' "
            f"becomes {remove_stopwords('profit did not rise')!r}; {hit} of {len(texts)} "
            "texts here lose one. For sentiment, leave it off"
        )
    if emptied := data.report.get("emptied_by_cleaning"):
        texts = "1 text is" if emptied == 1 else f"{emptied} texts are"
        notes.append(
            f"{texts} empty after data.cleaning and {'is' if emptied == 1 else 'are'} left "
            f"out, such as {data.report['emptied_example']!r}: no split trains or evaluates "
            f"on {'it' if emptied == 1 else 'them'}"
        )
    fix = (
        "data.duplicates: drop removes them from the earlier split"
        if config.duplicates == "keep"
        else "they have two labels; data.conflicts: drop removes them"
    )
    for pair, n in data.report.get("shared_texts", {}).items():
        if n:
            first, second = pair.split("/")
            texts = "1 text is" if n == 1 else f"{n} texts are"
            notes.append(
                f"{texts} in both the {first} and the {second} split: {second} scores are "
                f"inflated (leakage); {fix}"
            )
    variants = data.report.get("unicode_variants", {})
    forms = (
        "; data.duplicates compares texts as written, so it neither counts nor drops them: "
        "write the files in one Unicode form (NFC) to treat them as the same text"
    )
    for key, n in variants.items():
        if key == "example":
            continue
        texts = "1 text" if n == 1 else f"{n} texts"
        if "/" in key:
            first, second = key.split("/")
            notes.append(
                f"{texts} {'is' if n == 1 else 'are'} in both the {first} and the {second} "
                f"split written in another Unicode form: {second} scores are inflated "
                f"(leakage){forms}"
            )
        else:
            notes.append(
                f"{texts} of the {key} split {'is' if n == 1 else 'are'} another text there "
                "written in another Unicode form (composed or decomposed accents, such as "
                f"{variants['example']!r}){forms}"
            )
    for pair, near in data.report.get("near_copies", {}).items():
        first, second = pair.split("/")
        n, example = near["texts"], " and ".join(map(repr, near["example"]))
        texts = (
            f"1 text of the {second} split is" if n == 1 else f"{n} texts of the {second} split are"
        )
        notes.append(
            f"{texts} a {first} text but for case, spacing or punctuation (such as "
            f"{example}): {second} scores are inflated (leakage); data.duplicates "
            "compares texts as written, so it neither counts nor drops them"
        )
    notes.extend(data.report.get("unstratified_subsamples", {}).values())
    for name in data.report.get("labels_missing_from_train", []):
        label = data.labels.index(name)
        found = [
            f"{int((data.splits[role]['label'] == label).sum())} in {role}"
            for role in ("validation", "test")
            if (data.splits[role]["label"] == label).any()
        ]
        where = f" ({', '.join(found)})" if found else ""
        notes.append(f"label {name!r} has no training example{where}: the model cannot learn it")
    for role in ("validation", "test"):
        for name in data.report.get(f"labels_missing_from_{role}", []):
            n = int((data.splits["train"]["label"] == data.labels.index(name)).sum())
            notes.append(
                f"label {name!r} has {n} training example{'s' if n > 1 else ''} but none in "
                f"{role}: {role} metrics leave it out (macro averages cover the labels in the "
                "split or predicted)"
            )
    return notes


# --------------------------------------------------------------------------- reading


def _declared_labels(sources: dict[str, pd.DataFrame], column: str) -> list[str] | None:
    """A hub ClassLabel column's classes, in the dataset's order (its ids), each one kept,
    one with no example too (the report names it)."""
    declared = [f.attrs.get(CLASS_NAMES, {}).get(column) for f in sources.values()]
    return next((names for names in declared if names), None)


def _read(
    config: DataConfig,
) -> tuple[dict[str, pd.DataFrame], list[str] | None, str, dict[str, str]]:
    """The source's splits, its label names when known, where it is (for messages), and
    the file each split came from where the splits are files of their own."""
    if config.dataset:
        frames, labels = load_known(config.dataset, config.subset, config.path, config.encoding)
        where = config.path or KNOWN[config.dataset].hub_id
        return frames, labels, f"{source_name(config)} ({where})", {}
    if config.files:
        frames = {}
        for role, file in config.files.items():
            if Path(file).is_dir():
                raise FintuneError(
                    f"data.files.{role}: {file} is a directory; data.files names one file per "
                    "split (a directory of split files is data.path)"
                )
            if not Path(file).is_file():
                raise FintuneError(
                    f"data.files.{role}: file not found: {file}{relative_note(file)}"
                )
            frames[role] = read_table(Path(file), config.format, config.encoding, config.quoting)
        files = {role: str(file) for role, file in config.files.items()}
        return frames, None, ", ".join(files.values()), files
    if config.path:
        path = Path(config.path)
        named = set(config.split_names.values())  # a folder's files that split_names maps
        frames = read_local(path, config.format, config.encoding, config.quoting, named)
        files = split_files(path, config.format, named) if path.is_dir() else {}
        return frames, None, config.path, {split: str(file) for split, file in files.items()}
    assert config.hub_id  # the schema requires one source
    frames = read_hub(config.hub_id, config.hub_config, config.hub_revision)
    return frames, None, source_name(config), {}


def source_name(config: DataConfig) -> str:
    """A known dataset or hub dataset with the variant read: FPB's 50 and 75 are not one."""
    if config.dataset:
        known = KNOWN[config.dataset]
        subset = str(config.subset or known.default_subset).lower().removesuffix("agree")
        return f"{config.dataset} subset {subset}" if len(known.local_files) > 1 else config.dataset
    read = [f"config {config.hub_config}"] if config.hub_config else []
    read += [f"revision {config.hub_revision}"] if config.hub_revision else []
    return config.hub_id + (f" ({', '.join(read)})" if read else "")


def _assign_roles(
    frames: dict[str, pd.DataFrame], config: DataConfig, origin: str
) -> dict[str, pd.DataFrame]:
    """Rename source splits to roles: data.split_names maps role -> source split."""
    sources = list(config.split_names.values())
    if len(set(sources)) < len(sources):
        raise FintuneError(
            f"data.split_names: one source split cannot play two roles ({config.split_names})"
        )
    mapping: dict[str, str] = {}  # role -> source split: train, dev, valid ... by their names
    for name in frames:
        role = SPLIT_STEMS.get(name.lower())
        if role and role not in config.split_names:
            if role in mapping:
                raise FintuneError(
                    f"data: {origin} has splits {mapping[role]!r} and {name!r}, both read as "
                    f"{role}; choose one with data.split_names.{role}"
                )
            mapping[role] = name
    for role, source in config.split_names.items():
        if source not in frames:
            raise FintuneError(
                f"data.split_names.{role}: {origin} has no split {source!r}; "
                f"it has: {', '.join(sorted(frames))}{_near_split(source, frames, config)}"
            )
        mapping = {r: s for r, s in mapping.items() if s != source}
        mapping[role] = source
    if "train" not in mapping:
        given = [
            f"{source!r} to {role}"
            for role, source in config.split_names.items()
            if SPLIT_STEMS.get(source.lower()) == "train"
        ]
        if given:  # not "has no train split (it has train)"
            raise FintuneError(
                f"data.split_names: {origin} has no split left for train: split_names gives "
                f"{', '.join(given)}; map another split to train with data.split_names.train "
                "(one file's test and validation are cut from it by the data.split ratios)"
            )
        raise FintuneError(
            f"data: {origin} has no train split (it has {', '.join(sorted(frames))}); "
            "name it with data.split_names.train"
        )
    return {role: frames[source] for role, source in mapping.items()}


def _reads_folder(config: DataConfig) -> bool:
    """The data is a folder's split files (data.path), not a known dataset or data.files."""
    return (
        bool(config.path) and not config.dataset and not config.files and Path(config.path).is_dir()
    )


def _near_split(source: str, frames: dict[str, pd.DataFrame], config: DataConfig) -> str:
    """The split (or, in a folder, the unread file) data.split_names meant: 'Holdout.csv'
    for holdout, 'validation' for Validation."""
    files: dict[str, str] = {}
    folder = Path(config.path or "")
    if _reads_folder(config):
        names = sorted(f.name for f in folder.iterdir() if f.is_file())
        files = {n.split(".")[0]: n for n in names if not n.startswith(".")}  # Holdout.csv.gz
    names = [*frames, *files]
    same = [name for name in names if name.casefold() == source.casefold()]
    near = same or difflib.get_close_matches(source, names, n=1, cutoff=0.6)
    if not near:
        return ""
    exactly = "Split names match case and spelling exactly"
    if near[0] in frames:
        return f"; did you mean {near[0]!r}? {exactly}"
    file = files[near[0]]
    if config.format == "auto" and Path(file).suffix.lower() not in SUFFIX_FORMATS:
        return (
            f"; {file} is not read: a split file needs a csv, tsv, jsonl, json, parquet or txt "
            "suffix"
        )
    # read under all its name before the last suffix: holdout.v2.csv is split 'holdout.v2'
    stem = Path(file).stem
    how = "" if stem == near[0] else "; a file's split name is its name before its last suffix"
    return f"; did you mean {stem!r} ({file})? {exactly}{how}"


def _placeholder_texts(
    frames: dict[str, pd.DataFrame], column: str, where: dict[str, str]
) -> dict[str, Any] | None:
    """Texts that are only a missing-value marker ('N/A'): an export's empty cell, which
    trains as the literal text. Counted, with the first, for a warning."""
    found = []
    for role, frame in frames.items():
        for row, text in enumerate(frame[column], start=1):
            if isinstance(text, str) and is_missing_marker(text):
                found.append((text.strip(), f"{where[role]}, {_row(frame, row)}"))
    if not found:
        return None
    return {"count": len(found), "first": found[0][1], "text": found[0][0]}


def _check_columns(frame: pd.DataFrame, config: DataConfig, where: str, role: str) -> None:
    for key in ("text_column", "label_column"):
        column = getattr(config, key)
        if column not in frame.columns:
            columns = ", ".join(map(repr, frame.columns))  # ' label' is seen to differ
            hint = _column_hint(column, [str(c) for c in frame.columns], key)
            near = hint.startswith("; did you mean")
            if not near and (value := _header_as_data(frame)) is not None:
                hint = (
                    f"; its first line looks like data, not a header: {value!r} is also a "
                    "value in its own column. If the file has no header row, add one (say "
                    "`label,text`) as its first line: read as column names, that first "
                    "example is lost"
                )
            if list(frame.columns) == ["text"] and _all_hold_at(frame["text"]):
                hint = "; the lines read 'sentence@label': set data.format: fpb"
            elif list(frame.columns) == ["text"] and key == "label_column" and not near:
                hint = (
                    "; the data holds texts only, no labels (a txt file is one text per line): "
                    "give them with their labels as csv, tsv, jsonl or parquet"
                )
                if (given_as := _given_as(config)) != "file":  # one split of several
                    hint = (
                        f"; the {role} split holds texts only, no labels: "
                        + unlabelled_split_fix(role, given_as)
                    )
            raise FintuneError(
                f"data.{key}: column {column!r} not in {where}; columns are: {columns}{hint}"
            )


def _header_as_data(frame: pd.DataFrame) -> str | None:
    """A column name that is also one of the column's values ('neutral' in a headerless
    `neutral,"Sales rose"` file): the first line is a record, read as the header."""
    for name in frame.columns:
        if frame[name].astype(str).eq(str(name)).any():
            return str(name)
    return None


def _all_hold_at(texts: pd.Series) -> bool:
    """One text per line, each with an '@': Financial PhraseBank's format, read as txt."""
    return len(texts) > 0 and bool(texts.astype(str).str.contains("@", regex=False).all())


def _column_hint(column: str, columns: list[str], key: str) -> str:
    """The column meant: the same name but for case and spaces first, else a near one; and
    the field to set."""
    if columns and columns[0].startswith(("ï»¿", "\ufeff")):  # a UTF-8 byte-order mark
        return "; a UTF-8 byte-order mark was read as text: set data.encoding: utf-8"
    same = [c for c in columns if c.strip().casefold() == column.strip().casefold()]
    near = same or difflib.get_close_matches(column, columns, n=1, cutoff=0.5)
    if near:
        return f"; did you mean {near[0]!r}? Set data.{key}: {near[0]!r}"
    what = "texts" if key == "text_column" else "labels"
    return f". Set data.{key} to the column of {what}"


def _given_as(config: DataConfig) -> str:
    """How the data's splits were given: 'files' (data.files), 'file' (data.path is one
    file, which train is cut from) or 'splits' (a folder's or the hub's named splits)."""
    if config.files:
        return "files"
    if config.path and not config.dataset and Path(config.path).is_file():
        return "file"
    return "splits"


def _to_examples(
    frame: pd.DataFrame,
    config: DataConfig,
    labels: list[str],
    as_ids: bool,
    by_name: bool,
    where: str,
) -> pd.DataFrame:
    """Pick text and label columns, check every row, map labels to ids."""
    texts = frame[config.text_column]
    # a JSON true/false reads as the word, as labels need; as a text it is no text
    booleans = frame.attrs.get("json_booleans", {}).get(config.text_column, ())
    for row, text in enumerate(texts, start=1):
        if row in booleans:
            text = text == "true"
        if isinstance(text, str) and text.strip():
            continue
        if isinstance(text, str):
            raise FintuneError(f"{where}, {_row(frame, row)}: empty text ({text!r})")
        if pd.api.types.is_scalar(text) and pd.isna(text):
            raise FintuneError(
                f"{where}, {_row(frame, row)}: no text (nothing in column {config.text_column!r})"
            )
        raise FintuneError(
            f"{where}, {_row(frame, row)}: the text is {_kind(text)} ({text!r}), not a "
            f"string; is data.text_column ({config.text_column!r}) the column of texts?"
        )
    given = config.labels is not None
    ids = _label_ids(frame, config.label_column, labels, as_ids, by_name, where, given)
    return pd.DataFrame({"text": texts.astype(str).str.strip(), "label": ids})


def _kind(value: Any) -> str:
    """'a number', not 'a int' or 'a float64'."""
    if isinstance(value, (bool, np.bool_)):
        return "a boolean"
    if isinstance(value, (int, float, np.number)):
        return "a number"
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


# --------------------------------------------------------------------------- quality


def _duplicates_and_conflicts(
    frames: dict[str, pd.DataFrame], config: DataConfig
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Report exact duplicate texts, texts with conflicting labels (in a split, or between
    two), and texts shared between splits (leakage); drop them when data.duplicates /
    data.conflicts say so."""
    report: dict[str, Any] = {}
    out = {}
    across: set[str] = set()  # texts with another label in another split, as when pooled
    if len(frames) > 1:
        both = pd.concat([frame.assign(role=role) for role, frame in frames.items()])
        per_text = both.groupby("text")[["label", "role"]].nunique()
        across = set(per_text.index[(per_text["label"] > 1) & (per_text["role"] > 1)])
    within = {}  # rows each split keeps by itself
    for role, frame in frames.items():
        labels_per_text = frame.groupby("text")["label"].nunique()
        conflicting = set(labels_per_text[labels_per_text > 1].index)
        in_conflict = frame["text"].isin(conflicting)
        duplicate = frame.duplicated(["text", "label"], keep="first")
        report[role] = {
            "rows": len(frame),
            "duplicate_rows": int(duplicate.sum()),
            "conflicting_texts": len(conflicting),
            "conflicting_rows": int(in_conflict.sum()),
            "examples_of_conflicts": sorted(conflicting)[:5],
        }
        keep = pd.Series(True, index=frame.index)
        if config.duplicates == "drop":
            keep &= ~duplicate
        if config.conflicts == "drop":
            keep &= ~in_conflict
        within[role] = int(keep.sum())
        if config.conflicts == "drop":
            keep &= ~frame["text"].isin(across)
        out[role] = frame[keep].reset_index(drop=True)
        if len(frame) and not len(out[role]):
            say = sorted(conflicting | across.intersection(frame["text"]))[0]
            raise FintuneError(
                f"data.conflicts: drop removed all {len(frame)} rows of the {role} split: every "
                f"text there has two or more labels (say {say!r})"
            )
    if len(frames) > 1:
        report["conflicting_texts_across_splits"] = len(across)
        if across:
            report["examples_of_conflicts_across_splits"] = sorted(across)[:5]
    # A text in two given splits leaks; with duplicates: drop the one in test stays, then
    # the one in validation (train gives way to both, validation to test).
    for role, others in (("train", ("validation", "test")), ("validation", ("test",))):
        if role not in out:
            continue
        dropped = {}
        for other in others:
            if other in out:
                shared = set(out[role]["text"]) & set(out[other]["text"])
                report[f"{other}_texts_also_in_{role}"] = len(shared)
                if shared and config.duplicates == "drop":
                    gone = out[role]["text"].isin(shared)
                    dropped[other] = int(gone.sum())
                    out[role] = out[role][~gone].reset_index(drop=True)
        if dropped and len(out[role]) == 0:
            counts = ", ".join(f"{n} shared with the {other} split" for other, n in dropped.items())
            raise FintuneError(
                f"data.duplicates: drop removed all {sum(dropped.values())} rows of the {role} "
                f"split, as texts also in a later split ({counts}); are the split files the "
                "same data?"
            )
    for role, frame in out.items():
        if len(frame) < within[role]:
            report[role]["dropped_across_splits"] = within[role] - len(frame)
        report[role]["kept_rows"] = len(frame)
    return out, report


def _unicode_variants(splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Texts that equal another only once both are in one Unicode form (NFC): 'café' with
    its accent composed and decomposed. Counted as texts in a split (a duplicate) and between
    two (leakage), with one example; texts are still compared, dropped and hashed as written."""
    frames = splits.values()
    if all(t.isascii() or unicodedata.is_normalized("NFC", t) for f in frames for t in f["text"]):
        return {}  # nearly always: no two distinct texts can then share a form
    texts = {role: set(frame["text"]) for role, frame in splits.items()}
    spellings: dict[str, dict[str, set[str]]] = {}  # role -> NFC form -> its spellings
    for role, group in texts.items():
        by_form = spellings[role] = {}
        for text in group:
            by_form.setdefault(unicodedata.normalize("NFC", text), set()).add(text)
    out: dict[str, Any] = {}
    examples = []
    for role, by_form in spellings.items():
        twice = sorted(form for form, ways in by_form.items() if len(ways) > 1)
        if twice:  # a form written k ways: k - 1 texts are another's variant
            out[role] = sum(len(by_form[form]) - 1 for form in twice)
            examples += twice[:1]
    for a, b in SPLIT_PAIRS:
        if a in spellings and b in spellings:
            # texts of b that a does not hold as written but holds in another spelling,
            # even where a holds one of b's spellings too (that one is in shared_texts)
            hidden = {}
            for form in sorted(spellings[a].keys() & spellings[b].keys()):
                if n := len(spellings[b][form] - spellings[a][form]):
                    hidden[form] = n
            if hidden:
                out[f"{a}/{b}"] = sum(hidden.values())
                examples.append(next(iter(hidden)))
    if out:
        out["example"] = examples[0]
    return out


def _shared_texts(splits: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Texts present in two splits (any label): leakage that inflates test scores."""
    texts = {role: set(frame["text"]) for role, frame in splits.items()}
    return {
        f"{a}/{b}": len(texts[a] & texts[b]) for a, b in SPLIT_PAIRS if a in texts and b in texts
    }


# --------------------------------------------------------------------------- splitting


def _split(
    frames: dict[str, pd.DataFrame], config: DataConfig, labels: list[str], seed: int, origin: str
) -> dict[str, pd.DataFrame]:
    splits = dict(frames)
    if "train" in splits and len(splits["train"]) == 0:
        raise FintuneError(
            f"data: the training data has no examples (source {origin}; a header, but no rows?)"
        )
    if "test" not in splits:
        splits["train"], splits["test"] = _holdout(
            splits["train"], config.split.test, config.split.stratify, labels, seed, "test"
        )
    if "validation" not in splits:
        splits["train"], splits["validation"] = _holdout(
            splits["train"],
            config.split.validation,
            config.split.stratify,
            labels,
            seed,
            "validation",
        )
    return {role: splits[role] for role in ROLES}


def _holdout(
    frame: pd.DataFrame, ratio: float, stratify: bool, labels: list[str], seed: int, role: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if ratio == 0:
        raise FintuneError(
            f"data.split.{role}: is 0 but the source has no {role} split; set a ratio such as 0.1"
        )
    n_held = round(len(frame) * ratio)
    if n_held == 0 or n_held == len(frame):
        raise FintuneError(
            f"data.split.{role}: a ratio of {ratio} of {len(frame)} examples leaves "
            f"{n_held} for {role}; the split would be empty"
        )
    strata = label_names(frame, labels) if stratify else None
    if stratify:
        counts = frame["label"].value_counts()
        n_classes = len(counts)
        rare = counts[counts < 2]
        if len(rare):
            name = labels[int(rare.index[0])]
            raise FintuneError(
                f"data.split.{role}: cannot stratify: label {name!r} has only "
                f"{int(rare.iloc[0])} example in the {len(frame)} being split (needs at least 2); "
                "add data, drop the label, or set data.split.stratify: false"
            )
        n_rest = len(frame) - n_held
        if n_held < n_classes or n_rest < n_classes:
            if n_held >= n_classes:
                fix = "lower the ratio"
            elif n_rest >= n_classes:
                fix = "raise the ratio"
            else:
                fix = "add data"
            raise FintuneError(
                f"data.split.{role}: cannot stratify {len(frame)} examples of {n_classes} "
                f"labels with ratio {ratio}: each side needs at least one example per label "
                f"({n_held} held out, {n_rest} left); {fix}, or set data.split.stratify: false"
            )
    rest, held = train_test_split(frame, test_size=n_held, random_state=seed, stratify=strata)
    return rest.reset_index(drop=True), held.reset_index(drop=True)


def label_names(frame: pd.DataFrame, labels: list[str]) -> np.ndarray:
    """Each row's label name, what a split is stratified on: scikit-learn shuffles each class
    in the order of its values, so stratifying on class ids gave another test set for the
    same rows and seed when only the label order changed (data.labels in another order, a
    CSV's integer labels as a JSONL's text)."""
    return np.asarray(labels, dtype=object)[frame["label"].to_numpy()]


def _subsample(
    splits: dict[str, pd.DataFrame], config: DataConfig, labels: list[str], seed: int
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Each split cut to its max_*_samples, stratified by label where scikit-learn can;
    with, per split that could not be, why not (for a warning)."""
    limits = {
        "train": config.max_train_samples,
        "validation": config.max_eval_samples,
        "test": config.max_eval_samples,
    }
    out, unstratified = {}, {}
    for role, frame in splits.items():
        limit = limits[role]
        if limit is None or len(frame) <= limit:
            out[role] = frame
            continue
        counts = frame["label"].value_counts()
        field = "max_train_samples" if role == "train" else "max_eval_samples"
        why = None
        if counts.min() < 2:
            rare = labels[counts.idxmin()]
            why = f"label {rare!r} has 1 example in the {role} split"
        elif min(limit, len(frame) - limit) < len(counts):  # each side must hold every label
            left_out = len(frame) - limit
            why = (
                f"they are {limit} of {len(frame)}, leaving out {left_out}; stratifying needs "
                f"at least one per label ({len(counts)}) on each side"
            )
        strata = None if why else label_names(frame, labels)
        keep, _ = train_test_split(frame, train_size=limit, random_state=seed, stratify=strata)
        out[role] = keep.reset_index(drop=True)
        if why:
            unstratified[role] = (
                f"the {role} split's {limit} examples (data.{field}) are drawn at random, not "
                f"stratified by label: {why}; its label shares may differ from the full split's"
            )
    return out, unstratified


# --------------------------------------------------------------------------- fingerprint


def fingerprint(splits: dict[str, pd.DataFrame], labels: list[str]) -> dict[str, Any]:
    """A hash of exactly what the model sees (after cleaning and splitting), with counts."""
    digest = hashlib.sha256()
    digest.update(("\x1f".join(labels) + "\n").encode())
    counts: dict[str, Any] = {}
    for role in ROLES:
        frame = splits.get(role)
        if frame is None:
            continue
        for text, label in zip(frame["text"], frame["label"], strict=True):
            digest.update(f"{role}\x1f{label}\x1f{text}\n".encode())
        per_label = frame["label"].value_counts()
        counts[role] = {
            "n": len(frame),
            "labels": {labels[i]: int(per_label.get(i, 0)) for i in range(len(labels))},
        }
    return {"sha256": digest.hexdigest(), "counts": counts}
