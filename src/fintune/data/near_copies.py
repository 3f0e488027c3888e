"""Texts of two splits that are one sentence but for case, spacing, punctuation or Unicode
compatibility forms ('Profit rose 5%.' in train, 'profit rose 5 %' in test): leakage that
data.duplicates, which compares texts as written, neither counts nor drops."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pandas as pd

SPLIT_PAIRS = (("train", "validation"), ("train", "test"), ("validation", "test"))


# A minus sign written before a number ('fell -5%'), not a hyphen inside a word or a range
# ('pre-2008', '3-5'): it changes what the sentence says, so it is kept as a word.
MINUS = re.compile(r"(?<![\w.,])[-\u2212\u2013](?=\d)")


def loose_form(text: str) -> str:
    """The text in compatibility form, case-folded, without invisible format characters (a
    soft hyphen or zero-width space inside 'pro\u00adfit'), with every run of punctuation
    and spacing one space: what stays of a sentence when only its writing changes. A minus
    sign before a number stays ('-5%' and '5%' differ), in whichever dash it is written."""
    visible = (c for c in unicodedata.normalize("NFKC", text) if unicodedata.category(c) != "Cf")
    folded = MINUS.sub(" minus ", "".join(visible).casefold())
    return " ".join(re.sub(r"[\W_]+", " ", folded).split())


def near_copies(splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Per pair of splits ("train/test"): how many texts of the second have the loose form
    of a text of the first without being one of them as written or in one Unicode form
    (those are counted as shared texts and Unicode variants), with one example pair; pairs
    without any are left out."""
    forms: dict[str, dict[str, set[str]]] = {}  # role -> loose form -> its texts there
    for role, frame in splits.items():
        by_form = forms[role] = {}
        for text in set(frame["text"]):
            if form := loose_form(text):
                by_form.setdefault(form, set()).add(text)
    out: dict[str, Any] = {}
    for first, second in SPLIT_PAIRS:
        if first not in forms or second not in forms:
            continue
        near = {}  # loose form -> the second's texts of it that the first does not hold
        for form in sorted(forms[first].keys() & forms[second].keys()):
            held = _nfc(forms[first][form])
            if others := {t for t in forms[second][form] if _nfc({t}).isdisjoint(held)}:
                near[form] = others
        if near:
            form = next(iter(near))
            example = [min(forms[first][form]), min(near[form])]
            texts = sum(map(len, near.values()))  # what the warning says
            out[f"{first}/{second}"] = {"texts": texts, "example": example}
    return out


def _nfc(texts: set[str]) -> set[str]:
    return {unicodedata.normalize("NFC", text) for text in texts}
