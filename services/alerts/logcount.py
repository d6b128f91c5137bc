"""What a log rule keeps: which lines it selects, and per series how many of them fell in
its sliding window.

Pure and clock-free, like ``absence.py``: the caller says what time it is, so the
evaluator, a restart's replay and the tests drive the same code. A window is kept in
buckets of a thousandth of its span (at least a millisecond), so a series costs at most
about a thousand counters however many lines it gets, and its count is exact to within
one bucket at the window's far edge.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from typing import Any

from shared.logmatch import LineFilter
from shared.ruleconfig import LogSelector

BUCKETS_PER_WINDOW = 1000
MIN_BUCKET_S = 0.001


class LineSelector:
    """A rule's ``logs`` selector worked out once: a line is matched field by field, the
    text last (only a line that passes the rest is tokenized)."""

    def __init__(self, selector: LogSelector):
        self.service = selector.service
        self.by = tuple(selector.by)
        self.filter = LineFilter.of(
            selector.level,
            [selector.service] if selector.service else [],
            selector.labels,
            selector.q,
        )
        self.query = self.filter.query

    def matches(self, entry: Mapping[str, Any], words: list[str] | None = None) -> bool:
        return self.filter.admits(entry, words)

    def series_labels(self, entry: Mapping[str, Any]) -> dict[str, str]:
        """The alert labels of the line's series: its ``by`` values (``service`` and
        ``level`` are the line's own fields) and the selector's service; empty values left
        out, as a missing label."""
        labels: dict[str, str] = {}
        if self.service:
            labels["service"] = self.service
        own = entry.get("labels") or {}
        for name in self.by:
            if name == "service":
                value = entry.get("service", "")
            elif name == "level":
                value = entry.get("level", "info")
            else:
                value = own.get(name, "")
            if value:
                labels[name] = value
        return labels


class WindowCount:
    """Lines per bucket over a sliding window; buckets in time order."""

    __slots__ = ("counts", "keys", "span", "total", "width")

    def __init__(self, span: float):
        self.span = span
        self.width = max(span / BUCKETS_PER_WINDOW, MIN_BUCKET_S)
        self.keys: list[int] = []
        self.counts: list[int] = []
        self.total = 0

    def add(self, at: float, lines: int = 1) -> None:
        key = math.floor(at / self.width)
        keys = self.keys
        if keys and keys[-1] == key:
            self.counts[-1] += lines
        elif not keys or keys[-1] < key:
            keys.append(key)
            self.counts.append(lines)
        else:  # a line stamped earlier than the newest: rare, placed in order
            where = bisect.bisect_left(keys, key)
            if where < len(keys) and keys[where] == key:
                self.counts[where] += lines
            else:
                keys.insert(where, key)
                self.counts.insert(where, lines)
        self.total += lines

    def _first_inside(self, now: float) -> int:
        return bisect.bisect_left(self.keys, math.ceil((now - self.span) / self.width))

    def count(self, now: float) -> int:
        """The lines stamped after ``now`` minus the window. Lines stamped after ``now``
        count too: a batch's arrival is the gateway's clock, which may run a little ahead
        of this one, and the timer must not take them for gone."""
        return sum(self.counts[self._first_inside(now) :])

    def evict(self, now: float) -> None:
        """Forget the buckets that left the window at ``now``."""
        start = self._first_inside(now)
        if start:
            self.total -= sum(self.counts[:start])
            del self.keys[:start], self.counts[:start]

    def __bool__(self) -> bool:
        return self.total > 0
