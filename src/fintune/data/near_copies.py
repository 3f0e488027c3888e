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
    """The text in compatibility form, case-folded, with every run of punctuation and
    spacing one space: what stays of a sentence when only its writing changes. A minus
    sign before a number stays ('-5%' and '5%' differ), in whichever dash it is written."""
    folded = MINUS.sub(" minus ", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(re.sub(r"[\W_]+", " ", folded).split())


def near_copies(splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Per pair of splits ("train/test"): how many texts of the second have a loose form
    of the first while no text of one of that form is a text of the other as written or
    in one Unicode form (those are counted as shared texts and Unicode variants), with
    one example pair; pairs without any are left out."""
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
        near = sorted(
            form
            for form in forms[first].keys() & forms[second].keys()
            if not _nfc(forms[first][form]) & _nfc(forms[second][form])
        )
        if near:
            example = [min(forms[first][near[0]]), min(forms[second][near[0]])]
            texts = sum(len(forms[second][form]) for form in near)  # what the warning says
            out[f"{first}/{second}"] = {"texts": texts, "example": example}
    return out


def _nfc(texts: set[str]) -> set[str]:
    return {unicodedata.normalize("NFC", text) for text in texts}
