"""Near copies: texts of two splits that differ only in case, spacing, punctuation or
compatibility forms are counted as leakage, apart from exact and Unicode-form copies."""

from __future__ import annotations

import pandas as pd

from fintune.data.near_copies import loose_form, near_copies
from fintune.report.markdown import _quality_lines


def _splits(**texts: list[str]) -> dict[str, pd.DataFrame]:
    return {role: pd.DataFrame({"text": t, "label": 0}) for role, t in texts.items()}


def test_the_loose_form_keeps_the_words_and_drops_their_writing():
    assert loose_form("Profit  ROSE 5%.") == loose_form("profit rose 5 %") == "profit rose 5"
    assert loose_form("\uff30rofit rose") == "profit rose"  # a full-width letter
    assert loose_form("Glaston's brands") == loose_form("Glaston 's brands")
    assert loose_form("profit rose") != loose_form("profit rose sharply")


def test_a_minus_sign_before_a_number_is_kept():
    """'fell -5%' and 'fell 5%' say opposite things; both lost the sign and were flagged as
    one sentence written two ways. A hyphen in a word or a range is still writing."""
    assert loose_form("Margin fell -5%") != loose_form("Margin fell 5%")
    assert loose_form("Margin fell -5%") == loose_form("margin fell \u22125 %")  # U+2212
    assert loose_form("EPS (-0.12)") == loose_form("eps -0.12") != loose_form("EPS 0.12")
    assert loose_form("pre-2008 levels") == loose_form("pre 2008 levels")
    assert loose_form("up 3-5%") == loose_form("up 3 5%")
    splits = _splits(train=["Margin fell -5%"], test=["Margin fell 5%", "margin fell \u22125%"])
    assert near_copies(splits) == {
        "train/test": {"texts": 1, "example": ["Margin fell -5%", "margin fell \u22125%"]}
    }


def test_near_copies_are_counted_per_pair_of_splits_with_an_example():
    splits = _splits(
        train=["Profit rose 5%.", "Sales fell", "Same text", "Cafe\u0301 opens"],
        validation=["profit rose 5 %", "Nothing alike"],
        test=["PROFIT ROSE 5%", "sales fell!", "Same text", "Caf\u00e9 opens", "..."],
    )
    assert near_copies(splits) == {
        "train/validation": {"texts": 1, "example": ["Profit rose 5%.", "profit rose 5 %"]},
        # "Same text" is a shared text and "Café" a Unicode variant: said elsewhere
        "train/test": {"texts": 2, "example": ["Profit rose 5%.", "PROFIT ROSE 5%"]},
        "validation/test": {"texts": 1, "example": ["profit rose 5 %", "PROFIT ROSE 5%"]},
    }
    assert near_copies(_splits(train=["a b"], test=["a c"])) == {}
    lines = _quality_lines({"near_copies": near_copies(splits)}, None)
    assert lines == [
        "- texts of two splits equal but for case, spacing or punctuation (near copies; "
        "neither deduplicated nor dropped): train/validation 1, train/test 2, validation/test 1"
    ]


def test_the_count_is_of_the_later_splits_texts_not_of_their_loose_forms():
    """Two test texts that are one train text written twice otherwise were counted as one:
    'a text of the test split is a train text ...' said 1 where 2 leak."""
    splits = _splits(train=["Profit rose."], test=["PROFIT ROSE", "profit rose!", "Sales fell"])
    assert near_copies(splits)["train/test"]["texts"] == 2


def test_a_soft_hyphen_or_zero_width_space_inside_a_word_is_writing():
    """'pro\u00adfit' (a soft hyphen, invisible) had the loose form 'pro fit': ten test
    texts that were train texts but for it were counted nowhere (found in review)."""
    assert loose_form("Operating pro\u00adfit rose") == loose_form("operating profit rose")
    assert loose_form("net\u200bsales") == loose_form("netsales")
    splits = _splits(train=["Operating pro\u00adfit rose"], test=["Operating profit rose"])
    assert near_copies(splits)["train/test"]["texts"] == 1


def test_a_near_copy_of_a_text_shared_as_written_is_still_counted():
    """A form with one spelling in both splits was passed over whole: 'PROFIT ROSE 5 %' in
    test was counted neither as shared (it is not written so in train) nor as a near copy,
    and the warnings said 1 text leaks where 2 do (found in review)."""
    splits = _splits(train=["Profit rose 5%."], test=["Profit rose 5%.", "PROFIT ROSE 5 %"])
    assert near_copies(splits) == {
        "train/test": {"texts": 1, "example": ["Profit rose 5%.", "PROFIT ROSE 5 %"]}
    }
