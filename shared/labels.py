"""What a label may be, and how many of them travel in a notification or an incident.

Free of pydantic, so the host agent can clean what it reads from the system before
sending it. ``Sample`` (shared/events/metrics.py) enforces the same rules with the
patterns below, which pydantic-core runs in one compiled pass per label.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

MAX_LABELS = 64
MAX_LABEL_NAME_CHARS = 128
MAX_LABEL_VALUE_CHARS = 512

# Prometheus label names, without the ``__`` prefix it reserves for itself
LABEL_NAME_PATTERN = r"^(?:[a-zA-Z]|_(?:[a-zA-Z0-9]|$))[a-zA-Z0-9_]*$"
LABEL_NAME_RULE = "[a-zA-Z_][a-zA-Z0-9_]* and must not start with __ (reserved)"

# No control characters (C0, C1, DEL), no format characters (bidi overrides and marks,
# zero-width characters, BOM) and no line or paragraph separators: the code points of
# categories Cc, Cf, Zl and Zp (Unicode 14, as ``unicodedata`` has them; a test keeps the
# two in step). Spelled out rather than ``\p{Cc}``, so that every reader of the OpenAPI
# document (JSON Schema validators, test generators) understands the pattern the same way.
UNPRINTABLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x0, 0x1F),
    (0x7F, 0x9F),
    (0xAD, 0xAD),
    (0x600, 0x605),
    (0x61C, 0x61C),
    (0x6DD, 0x6DD),
    (0x70F, 0x70F),
    (0x890, 0x891),
    (0x8E2, 0x8E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x13438),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)
UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _class_char(code_point: int) -> str:
    # ``\uXXXX`` reads the same in Rust, Python and ECMAScript patterns; beyond the BMP
    # the character itself does (ECMAScript has no common escape for it)
    return f"\\u{code_point:04X}" if code_point <= 0xFFFF else chr(code_point)


PRINTABLE_PATTERN = (
    "^[^"
    + "".join(
        _class_char(lo) if lo == hi else f"{_class_char(lo)}-{_class_char(hi)}"
        for lo, hi in UNPRINTABLE_RANGES
    )
    + "]*$"
)

# what a webhook body or an incident carries of an alert's labels
NOTIFIED_LABELS = 32
NOTIFIED_VALUE_CHARS = 256
ELLIPSIS = "…"


def first_unprintable(text: str) -> str | None:
    """The first character ``PRINTABLE_PATTERN`` refuses, to name it in an error."""
    return next((ch for ch in text if unicodedata.category(ch) in UNPRINTABLE_CATEGORIES), None)


def printable(text: str, limit: int = MAX_LABEL_VALUE_CHARS) -> str:
    """``text`` made a valid label value: unprintable characters become U+FFFD, and it is
    cut to ``limit`` characters. For values read from the system (process names, mounts)."""
    if first_unprintable(text) is not None:
        text = "".join(
            "\ufffd" if unicodedata.category(ch) in UNPRINTABLE_CATEGORIES else ch for ch in text
        )
    return text[:limit]


@dataclass(frozen=True)
class BoundedLabels:
    """At most ``NOTIFIED_LABELS`` labels (by name), each value at most
    ``NOTIFIED_VALUE_CHARS`` long; ``truncated`` counts the labels not shown in full."""

    labels: dict[str, str]
    truncated: int

    def text(self) -> str:
        """``k=v, k2=v2`` with a note of what was left out."""
        shown = ", ".join(f"{k}={v}" for k, v in self.labels.items())
        if not self.truncated:
            return shown
        return f"{shown}, {ELLIPSIS} ({self.truncated} labels not shown in full)"


def bounded_labels(
    labels: Mapping[str, str],
    max_labels: int = NOTIFIED_LABELS,
    max_value_chars: int = NOTIFIED_VALUE_CHARS,
) -> BoundedLabels:
    """The labels a payload carries: the first ``max_labels`` names in sorted order, each
    value cut to ``max_value_chars`` (ending in an ellipsis when cut)."""
    kept: dict[str, str] = {}
    cut = 0
    for name in sorted(labels)[:max_labels]:
        value = labels[name]
        if len(value) > max_value_chars:
            value = value[: max_value_chars - 1] + ELLIPSIS
            cut += 1
        kept[name] = value
    return BoundedLabels(kept, cut + max(0, len(labels) - max_labels))
