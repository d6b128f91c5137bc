"""Label rules shared by every hop: cleaning system-read values, and the bound on what a
notification or an incident carries."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.events.metrics import LabelValue
from shared.labels import (
    MAX_LABEL_VALUE_CHARS,
    NOTIFIED_LABELS,
    NOTIFIED_VALUE_CHARS,
    PRINTABLE_PATTERN,
    UNPRINTABLE_CATEGORIES,
    UNPRINTABLE_RANGES,
    bounded_labels,
    first_unprintable,
    printable,
)

LABEL_VALUE = TypeAdapter(LabelValue)
AWKWARD = [
    "plain",
    "Zürich 東京 🙂",
    "a\nb",
    "\x00",
    "\x7f",
    "\x85",
    "x\u202ey",
    "\u200b",
    "\ufeff",
]


@pytest.mark.parametrize("text", AWKWARD)
def test_the_python_check_and_the_sample_pattern_agree(text: str) -> None:
    try:
        LABEL_VALUE.validate_python(text)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == (first_unprintable(text) is None)


def test_the_spelled_out_ranges_are_exactly_the_unprintable_categories() -> None:
    listed = {cp for lo, hi in UNPRINTABLE_RANGES for cp in range(lo, hi + 1)}
    # surrogates cannot occur in a decoded JSON string that reaches a pattern
    categories = UNPRINTABLE_CATEGORIES - {"Cs"}
    unprintable = {
        cp for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) in categories
    }
    assert listed == unprintable, f"UNPRINTABLE_RANGES: Unicode {unicodedata.unidata_version}"


def test_pydantic_and_python_read_the_pattern_alike() -> None:
    """The pattern as the OpenAPI document carries it (read by Python's ``re`` in JSON
    Schema tools) refuses exactly what the validating engine refuses."""
    pattern = re.compile(PRINTABLE_PATTERN)
    for lo, hi in UNPRINTABLE_RANGES:
        for cp in {lo, hi}:
            text = f"a{chr(cp)}b"
            assert pattern.match(text) is None
            with pytest.raises(ValidationError):
                LABEL_VALUE.validate_python(text)
    for text in ("plain", "Zürich 東京 🙂", "\u00ae\u2027\u2030\ufffd"):
        assert pattern.match(text) is not None
        assert LABEL_VALUE.validate_python(text) == text


@pytest.mark.parametrize("text", AWKWARD)
def test_a_cleaned_value_is_always_a_valid_label_value(text: str) -> None:
    assert LABEL_VALUE.validate_python(printable(text)) == printable(text)


def test_cleaning_replaces_what_is_unprintable_and_cuts_to_the_limit() -> None:
    assert printable("kworker/0:1\n\u202eevil") == "kworker/0:1\ufffd\ufffdevil"
    assert printable("ok") == "ok"
    assert len(printable("x" * 2000)) == MAX_LABEL_VALUE_CHARS


def test_small_label_sets_pass_whole() -> None:
    bounded = bounded_labels({"host": "web-1", "dc": "eu"})
    assert bounded.labels == {"dc": "eu", "host": "web-1"}
    assert bounded.truncated == 0
    assert bounded.text() == "dc=eu, host=web-1"


def test_large_label_sets_are_cut_with_a_count_of_what_is_not_shown_in_full() -> None:
    labels = {f"l{n:03}": "v" for n in range(100)}
    labels["l000"] = "x" * 1000
    bounded = bounded_labels(labels)
    assert list(bounded.labels) == [f"l{n:03}" for n in range(NOTIFIED_LABELS)]
    assert len(bounded.labels["l000"]) == NOTIFIED_VALUE_CHARS
    assert bounded.labels["l000"].endswith("…")
    assert bounded.truncated == (100 - NOTIFIED_LABELS) + 1
    assert bounded.text().endswith(", … (69 labels not shown in full)")
