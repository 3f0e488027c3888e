"""Financial datasets known by name: where they live on the hub, how their local copies are
laid out, and their label order. `data.dataset: NAME` plus optional `data.path` (a local
copy) is all a config needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fintune.config.load import did_you_mean
from fintune.data.sources import read_hub, read_table
from fintune.errors import FintuneError, relative_note


@dataclass(frozen=True)
class KnownDataset:
    hub_id: str
    labels: list[str]
    local_files: dict[str, dict[str, str]]
    """subset -> {split: file name in the local directory}."""
    hub_configs: dict[str, str | None]
    """subset -> hub config name."""
    default_subset: str
    text_column: str = "text"
    label_column: str = "label"
    local_label_column: str = "label"
    local_format: str = "auto"
    label_aliases: dict[str, str] = field(default_factory=dict)
    """Names used in some copies -> our label names."""
    hub_revision: str | None = None
    """The hub repo still holds a loading script, which datasets>=4 will not run; its
    parquet conversion branch loads."""


_FPB_FILES = {"50": "50Agree", "66": "66Agree", "75": "75Agree", "all": "AllAgree"}

KNOWN: dict[str, KnownDataset] = {
    "financial_phrasebank": KnownDataset(
        hub_id="takala/financial_phrasebank",
        labels=["negative", "neutral", "positive"],
        local_files={k: {"train": f"Sentences_{v}.txt"} for k, v in _FPB_FILES.items()},
        hub_configs={k: f"sentences_{v.lower()}" for k, v in _FPB_FILES.items()},
        default_subset="50",
        text_column="sentence",
        local_format="fpb",
        hub_revision="refs/convert/parquet",
    ),
    "twitter_financial_news_sentiment": KnownDataset(
        hub_id="zeroshot/twitter-financial-news-sentiment",
        labels=["bearish", "bullish", "neutral"],
        local_files={"default": {"train": "sent_train.csv", "validation": "sent_valid.csv"}},
        hub_configs={"default": None},
        default_subset="default",
        label_aliases={"0": "bearish", "1": "bullish", "2": "neutral"},
    ),
    "banking77": KnownDataset(
        hub_id="PolyAI/banking77",
        labels=[],  # the 77 intent names, sorted, from categories.json or the hub's names
        local_files={"default": {"train": "train.csv", "test": "test.csv"}},
        hub_configs={"default": None},
        default_subset="default",
        local_label_column="category",
    ),
}

BANKING77_CATEGORIES = "categories.json"


def load_known(
    name: str, subset: str | None, path: str | None, encoding: str | None = None
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Splits with columns `text`, `label` (label names), and the label order."""
    if name not in KNOWN:
        hint = did_you_mean(name, sorted(KNOWN))
        hint = "" if hint == "." else f" ({hint.removeprefix('; ')})"
        raise FintuneError(
            f"data.dataset: unknown dataset {name!r}{hint}; known: {', '.join(sorted(KNOWN))}. "
            "For any other data use data.path (local files) or data.hub_id."
        )
    known = KNOWN[name]
    subset = str(subset or known.default_subset).lower().removesuffix("agree")
    if subset not in known.local_files:
        raise FintuneError(
            f"data.subset: {name} has no subset {subset!r}; allowed: "
            + ", ".join(known.local_files)
        )
    if path is None:
        config = known.hub_configs[subset]
        frames = read_hub(known.hub_id, config, known.hub_revision, field="data.dataset")
        text_col, label_col = known.text_column, known.label_column
        for split, frame in frames.items():  # a hub copy not pinned to a revision can change
            if missing := [c for c in (text_col, label_col) if c not in frame.columns]:
                found = ", ".join(map(repr, frame.columns))
                raise FintuneError(
                    f"data.dataset: the hub copy of {name} ({known.hub_id}) has no column "
                    f"{missing[0]!r} in its {split} split (columns: {found}); fintune reads "
                    f"{text_col!r} and {label_col!r}. Point data.path at a local copy"
                )
        names = {str(v) for f in frames.values() for v in f[label_col] if not _missing(v)}
        labels = known.labels or sorted(names)
    else:
        frames, labels = _load_local(Path(path), known, subset, encoding)
        text_col, label_col = "text", known.local_label_column
    out = {}
    for split, frame in frames.items():
        values = [None if _missing(v) else str(v) for v in frame[label_col]]  # not "nan"
        out[split] = pd.DataFrame(
            {
                "text": frame[text_col],  # not astype(str): a missing text must stay missing
                "label": [known.label_aliases.get(v, v) for v in values],
            }
        )
        out[split].attrs = frame.attrs  # the file's line of each row, for errors
    return out, labels


def check_given_labels(
    dataset: str, given: list[str], names: list[str], frames: dict[str, pd.DataFrame]
) -> None:
    """data.labels for a known dataset lists its label names (in the order wanted): a copy's
    own values ('0' where the dataset says 'bearish') were refused as "row 1: label
    'bearish' is not in the label map", a value that row does not hold."""
    present = {v for frame in frames.values() for v in frame["label"] if isinstance(v, str)}
    if absent := sorted(present - set(given)):
        aliases = KNOWN[dataset].label_aliases
        read_as = ", ".join(f"{raw} as {name}" for raw, name in aliases.items())
        raise FintuneError(
            f"data.labels: {dataset}'s labels are {_first_ten(names)}"
            + (f" (its files' {read_as})" if aliases else "")
            + f", and data.labels does not name {_first_ten(list(map(repr, absent)))}: list "
            "the dataset's names, in the order wanted (or leave data.labels out)"
        )


def _first_ten(items: list[str]) -> str:  # BANKING77 has 77 labels
    more = f" ... ({len(items)} in all)" if len(items) > 10 else ""
    return ", ".join(items[:10]) + more


def _missing(value) -> bool:
    """An unlabelled row: None, or NaN where a string column stores None as NaN."""
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def _load_local(
    root: Path, known: KnownDataset, subset: str, encoding: str | None
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    if root.is_file():  # the file itself, not the directory that holds it
        files = ", ".join(known.local_files[subset].values())
        raise FintuneError(
            f"data.path: {root} is a file; with data.dataset, data.path is the directory "
            f"holding the dataset's files ({files}): set it to {root.parent}"
        )
    if not root.is_dir():
        raise FintuneError(f"data.path: directory not found: {root}{relative_note(root)}")
    frames = {}
    for split, file_name in known.local_files[subset].items():
        file = root / file_name
        if not file.is_file():
            raise FintuneError(f"data.path: {root} has no {file_name} (expected for {split})")
        frames[split] = read_table(file, known.local_format, encoding)
        for column in ("text", known.local_label_column):
            if column not in frames[split].columns:
                found = ", ".join(map(repr, frames[split].columns))
                raise FintuneError(
                    f"data.path: {file} has no column {column!r} (columns: {found}); a "
                    f"local copy of this dataset has 'text' and {known.local_label_column!r}"
                )
    labels = known.labels
    if not labels:
        labels = _categories(root / BANKING77_CATEGORIES)
    return frames, labels


def _categories(path: Path) -> list[str]:
    """BANKING77's label names: a JSON list of strings."""
    if not path.is_file():
        raise FintuneError(f"data.path: {path.parent} has no {path.name}")
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FintuneError(f"{path}: not valid UTF-8 JSON ({err})") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise FintuneError(f"{path}: expected a JSON list of label names (strings)")
    if repeated := next((name for name in names if names.count(name) > 1), None):
        raise FintuneError(
            f"{path}: the label name {repeated!r} appears twice; list each class once"
        )
    return sorted(names)
