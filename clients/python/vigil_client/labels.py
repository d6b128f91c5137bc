"""Label values Vigil accepts, and a bound on how many distinct ones a label may take.

Vigil refuses a whole batch when one label value holds a control or format character,
so values that come from requests (raw paths) are cleaned here, before they are counted.
"""

from __future__ import annotations

import re
import threading
import unicodedata

MAX_LABEL_VALUE_CHARS = 256
OVERFLOW = "__overflow__"
# categories Vigil refuses in a label value (control, format, surrogate, separators)
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
LABEL_NAME = re.compile(r"^(?:[a-zA-Z]|_(?:[a-zA-Z0-9]|$))[a-zA-Z0-9_]*$")


def printable(text: str, limit: int = MAX_LABEL_VALUE_CHARS) -> str:
    """``text`` as a valid label value: unprintable characters become U+FFFD, cut to ``limit``."""
    text = text[:limit]
    if text.isprintable():
        return text
    return "".join("\ufffd" if unicodedata.category(ch) in _UNPRINTABLE else ch for ch in text)


class BoundedValues:
    """Admits at most ``limit`` distinct values; later new ones become ``OVERFLOW``.

    A label taken from raw paths or caller-chosen names would otherwise make one series
    per distinct value, without end. Admitted values stay admitted for the process's life.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def admit(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self.limit:
                return OVERFLOW
            self._seen.add(value)
            return value

    def __len__(self) -> int:
        return len(self._seen)
