"""Every series the store knows, in memory: ids by label set, and matcher evaluation.

The series table is small next to the samples (one row per label set), so it is read
whole at start and kept here; selectors are resolved to series ids without touching
the samples, and only those ids are read from the columnar tables.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import orjson

from services.metrics.promql.source import LabelMatcher, MatchOp
from shared.events import series_key

NAME_LABEL = "__name__"
NO_DATA = (2**62, -(2**62))  # the span of a series without samples: empty however asked


@dataclass
class SeriesInfo:
    id: int
    name: str
    labels: dict[str, str]  # without __name__
    labels_json: str  # canonical JSON of ``labels``

    def label(self, key: str) -> str:
        """Prometheus' view: a missing label is the empty string."""
        if key == NAME_LABEL:
            return self.name
        return self.labels.get(key, "")

    def with_name(self) -> dict[str, str]:
        return {NAME_LABEL: self.name, **self.labels}


@lru_cache(maxsize=1024)
def _anchored(pattern: str) -> re.Pattern[str]:
    return re.compile(f"(?:{pattern})", re.DOTALL)


def matches(info: SeriesInfo, matcher: LabelMatcher) -> bool:
    value = info.label(matcher.name)
    if matcher.op is MatchOp.EQUAL:
        return value == matcher.value
    if matcher.op is MatchOp.NOT_EQUAL:
        return value != matcher.value
    found = _anchored(matcher.value).fullmatch(value) is not None
    return found if matcher.op is MatchOp.RE else not found


class SeriesIndex:
    """Series by id, by (name, labels JSON) and by name. Thread-safe: the writer adds
    series while readers select."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, SeriesInfo] = {}
        self._by_key: dict[tuple[str, str], int] = {}
        self._by_name: dict[str, list[int]] = {}
        self.next_id = 1
        # each series' first and last sample time, by id: widened for every batch in
        # bulk, so kept as columns rather than on each SeriesInfo
        # series_key -> id, as sorted columns for bulk lookups (plus those added since)
        self._sorted_keys = np.empty(0, dtype=np.uint64)
        self._sorted_ids = np.empty(0, dtype=np.int64)
        self._unsorted: dict[int, int] = {}
        self._first = np.full(1024, NO_DATA[0], dtype=np.int64)
        self._last = np.full(1024, NO_DATA[1], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._by_id)

    def id_of(self, name: str, labels_json: str) -> int | None:
        return self._by_key.get((name, labels_json))

    def ids_of_keys(self, keys: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The id of each ``series_key`` (int64; -1 where unknown), looked up in bulk."""
        with self._lock:
            if self._unsorted:
                self._sort_keys()
            known, ids = self._sorted_keys, self._sorted_ids
        if not len(known):
            return np.full(len(keys), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(known, keys), len(known) - 1)
        return np.where(known[at] == keys, ids[at], -1)

    def _sort_keys(self) -> None:
        keys = np.fromiter(self._unsorted, dtype=np.uint64, count=len(self._unsorted))
        ids = np.fromiter(self._unsorted.values(), dtype=np.int64, count=len(self._unsorted))
        keys = np.concatenate((self._sorted_keys, keys))
        ids = np.concatenate((self._sorted_ids, ids))
        order = np.argsort(keys, kind="stable")
        self._sorted_keys, self._sorted_ids = keys[order], ids[order]
        self._unsorted = {}

    def get(self, series_id: int) -> SeriesInfo:
        return self._by_id[series_id]

    def add(self, infos: Iterable[SeriesInfo]) -> None:
        with self._lock:
            for info in infos:
                self._by_id[info.id] = info
                self._by_key[(info.name, info.labels_json)] = info.id
                self._by_name.setdefault(info.name, []).append(info.id)
                self._unsorted[series_key(info.name, info.labels_json)] = info.id
                self.next_id = max(self.next_id, info.id + 1)

    def seen(
        self, ids: np.ndarray[Any, Any], first: np.ndarray[Any, Any], last: np.ndarray[Any, Any]
    ) -> None:
        """Widen the known span of time of the distinct series ``ids``."""
        if not len(ids):
            return
        with self._lock:
            self._grow(int(ids.max()) + 1)
            self._first[ids] = np.minimum(self._first[ids], first)
            self._last[ids] = np.maximum(self._last[ids], last)

    def reset_spans(self, spans: dict[int, tuple[int, int]]) -> None:
        """Replace every series' span (after retention dropped data)."""
        with self._lock:
            self._first.fill(NO_DATA[0])
            self._last.fill(NO_DATA[1])
            if spans:
                ids = np.fromiter(spans, dtype=np.int64, count=len(spans))
                self._grow(int(ids.max()) + 1)
                pairs = np.array(list(spans.values()), dtype=np.int64).reshape(-1, 2)
                self._first[ids], self._last[ids] = pairs[:, 0], pairs[:, 1]

    def span(self, series_id: int) -> tuple[int, int]:
        """(first, last) sample time known of a series; NO_DATA when it has none."""
        if series_id >= len(self._first):
            return NO_DATA
        return int(self._first[series_id]), int(self._last[series_id])

    def in_window(
        self, infos: list[SeriesInfo], start_ms: int | None, end_ms: int | None
    ) -> list[SeriesInfo]:
        """The series with data in [start_ms, end_ms], as far as known."""
        if not infos or (start_ms is None and end_ms is None):
            return infos
        low = -(2**62) if start_ms is None else start_ms
        high = 2**62 if end_ms is None else end_ms
        ids = np.fromiter((info.id for info in infos), dtype=np.int64, count=len(infos))
        first, last = self._first, self._last
        inside = ids < min(len(first), len(last))
        known = np.where(inside, ids, 0)
        keep = inside & (last[known] >= low) & (first[known] <= high)
        return [info for info, kept in zip(infos, keep.tolist(), strict=True) if kept]

    def _grow(self, size: int) -> None:
        if size <= len(self._first):
            return
        capacity = max(size, 2 * len(self._first))
        for attr, fill in (("_first", NO_DATA[0]), ("_last", NO_DATA[1])):
            column = np.full(capacity, fill, dtype=np.int64)
            old = getattr(self, attr)
            column[: len(old)] = old
            setattr(self, attr, column)

    def select(
        self, matchers: Sequence[LabelMatcher], start_ms: int | None, end_ms: int | None
    ) -> list[SeriesInfo]:
        """Series matching every matcher, with data in [start_ms, end_ms] as far as known."""
        names = [m.value for m in matchers if m.name == NAME_LABEL and m.op is MatchOp.EQUAL]
        with self._lock:
            if names:
                candidates = [self._by_id[i] for i in self._by_name.get(names[0], [])]
            else:
                candidates = list(self._by_id.values())
        return [
            info
            for info in self.in_window(candidates, start_ms, end_ms)
            if all(matches(info, matcher) for matcher in matchers)
        ]

    def equal(self, name: str | None, labels: dict[str, str]) -> list[SeriesInfo]:
        """Series of ``name`` (any when None) whose labels include every given pair."""
        matchers = [LabelMatcher(k, MatchOp.EQUAL, v) for k, v in labels.items()]
        if name is not None:
            matchers.append(LabelMatcher(NAME_LABEL, MatchOp.EQUAL, name))
        with self._lock:
            pool = (
                [self._by_id[i] for i in self._by_name.get(name, [])]
                if name is not None
                else list(self._by_id.values())
            )
        return [
            info
            for info in pool
            if all(info.labels.get(m.name) == m.value for m in matchers if m.name != NAME_LABEL)
        ]


def series_info(series_id: int, name: str, labels_json: str) -> SeriesInfo:
    labels: dict[str, str] = orjson.loads(labels_json)
    return SeriesInfo(series_id, name, labels, labels_json)
