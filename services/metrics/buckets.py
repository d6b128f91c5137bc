"""Rollup buckets in numpy: made from samples, combined with stored rollup rows, and read
as the value a PromQL function wants.

Samples come out of the store grouped by series and in time order within each piece, so
buckets are runs of equal (series, ``ts - ts % bucket``): one ``reduceat`` over the run
starts aggregates every series at once, far faster than a SQL ``GROUP BY``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BucketRows:
    """One row per series and bucket (once ``combined``: sorted, one row per pair)."""

    series_id: npt.NDArray[np.uint32]
    bucket: Ints
    last_ts: Ints
    v_min: Floats
    v_max: Floats
    v_sum: Floats
    v_count: Floats
    v_last: Floats

    def __len__(self) -> int:
        return len(self.series_id)

    @property
    def nbytes(self) -> int:
        return sum(column.nbytes for column in self._columns())

    @classmethod
    def of_samples(
        cls, ids: npt.NDArray[np.uint32], ts: Ints, values: Floats, bucket_ms: int
    ) -> BucketRows:
        """Samples grouped by series, rising in time within each."""
        bucket = ts - ts % bucket_ms
        change = np.r_[True, (ids[1:] != ids[:-1]) | (bucket[1:] != bucket[:-1])]
        starts = np.flatnonzero(change)
        ends = np.r_[starts[1:], len(ts)]
        return cls(
            ids[starts],
            bucket[starts],
            ts[ends - 1],
            np.minimum.reduceat(values, starts),
            np.maximum.reduceat(values, starts),
            np.add.reduceat(values, starts),
            (ends - starts).astype(np.float64),
            values[ends - 1],
        )

    @classmethod
    def of_columns(cls, found: dict[str, Any]) -> BucketRows:
        """Rows fetched from SQL (``fetchnumpy``) with the same column names."""
        return cls(
            np.asarray(found["series_id"], dtype=np.uint32),
            np.asarray(found["bucket"], dtype=np.int64),
            np.asarray(found["last_ts"], dtype=np.int64),
            *(
                np.asarray(found[name], dtype=np.float64)
                for name in ("v_min", "v_max", "v_sum", "v_count", "v_last")
            ),
        )

    def _columns(self) -> list[npt.NDArray[Any]]:
        return [
            self.series_id,
            self.bucket,
            self.last_ts,
            self.v_min,
            self.v_max,
            self.v_sum,
            self.v_count,
            self.v_last,
        ]

    def _take(self, order: npt.NDArray[np.intp]) -> BucketRows:
        return BucketRows(*(column[order] for column in self._columns()))

    def sorted(self) -> BucketRows:
        """Sorted by series and bucket, one row per pair (rows in any order). The rows
        come in runs already sorted, which the stable sort merges quickly."""
        if len(self) == 0:
            return self
        low = int(self.bucket.min())
        span = int(self.bucket.max()) - low + 1
        key = self.series_id.astype(np.int64) * span + (self.bucket - low)
        rows = self._take(np.argsort(key, kind="stable"))
        same = (rows.series_id[1:] == rows.series_id[:-1]) & (rows.bucket[1:] == rows.bucket[:-1])
        return BucketRows.combined([rows]) if same.any() else rows

    def between(self, low: int, high: int) -> BucketRows:
        """The rows of buckets starting in [low, high]."""
        inside = (self.bucket >= low) & (self.bucket <= high)
        return self if inside.all() else self._take(np.flatnonzero(inside))

    @classmethod
    def combined(cls, parts: list[BucketRows]) -> BucketRows:
        """Parts in time order as one set sorted by series and bucket. Rows of one bucket
        (a stored rollup and late samples rolled up apart) merge into one."""
        parts = [part for part in parts if len(part)]
        if not parts:
            empty = np.empty(0)
            return cls(empty.astype(np.uint32), *(empty.astype(np.int64),) * 2, *(empty,) * 5)
        rows = cls(*(np.concatenate(c) for c in zip(*(p._columns() for p in parts), strict=True)))
        rows = rows._take(np.argsort(rows.series_id, kind="stable"))
        same_series = rows.series_id[1:] == rows.series_id[:-1]
        if not np.any(same_series & (rows.bucket[1:] <= rows.bucket[:-1])):
            return rows
        rows = rows._take(np.lexsort((rows.last_ts, rows.bucket, rows.series_id)))
        change = np.r_[
            True,
            (rows.series_id[1:] != rows.series_id[:-1]) | (rows.bucket[1:] != rows.bucket[:-1]),
        ]
        starts = np.flatnonzero(change)
        ends = np.r_[starts[1:], len(rows)]
        return cls(
            rows.series_id[starts],
            rows.bucket[starts],
            rows.last_ts[ends - 1],
            np.minimum.reduceat(rows.v_min, starts),
            np.maximum.reduceat(rows.v_max, starts),
            np.add.reduceat(rows.v_sum, starts),
            np.add.reduceat(rows.v_count, starts),
            rows.v_last[ends - 1],
        )

    def wanted(self, want: str) -> Floats:
        if want == "avg":
            return self.v_sum / self.v_count
        column: Floats = {
            "last": self.v_last,
            "min": self.v_min,
            "max": self.v_max,
            "sum": self.v_sum,
            "count": self.v_count,
        }[want]
        return column

    def per_series(self, want: str, start_ms: int, end_ms: int) -> dict[int, tuple[Ints, Floats]]:
        """Each series' (newest sample time, wanted value) of its buckets whose newest
        sample falls in [start_ms, end_ms]."""
        return _per_series(self.series_id, self.last_ts, self.wanted(want), start_ms, end_ms)

    @classmethod
    def wanted_per_series(
        cls, parts: list[BucketRows], want: str, start_ms: int, end_ms: int
    ) -> dict[int, tuple[Ints, Floats]]:
        """``combined(parts).per_series(...)``, moving only the three columns it reads
        when no two parts share a bucket (the usual case: parts that follow each other
        in time, each sorted by series and bucket)."""
        parts = sorted((part for part in parts if len(part)), key=lambda p: int(p.bucket.min()))
        if not parts:
            return {}
        ids = np.concatenate([part.series_id for part in parts])
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        bucket = np.concatenate([part.bucket for part in parts])[order]
        if np.any((ids[1:] == ids[:-1]) & (bucket[1:] <= bucket[:-1])):
            return cls.combined(parts).per_series(want, start_ms, end_ms)
        last_ts = np.concatenate([part.last_ts for part in parts])[order]
        values = np.concatenate([part.wanted(want) for part in parts])[order]
        return _per_series(ids, last_ts, values, start_ms, end_ms)


def _per_series(
    series_id: npt.NDArray[np.uint32], last_ts: Ints, wanted: Floats, start_ms: int, end_ms: int
) -> dict[int, tuple[Ints, Floats]]:
    """Rows sorted by series and time, cut per series: those stamped in the interval."""
    inside = (last_ts >= start_ms) & (last_ts <= end_ms)
    ids, ts, values = series_id[inside], last_ts[inside], wanted[inside]
    if len(ids) == 0:
        return {}
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    return {
        series: (ts[a:b], values[a:b])
        for series, a, b in zip(ids[starts].tolist(), starts.tolist(), ends.tolist(), strict=True)
    }


class BucketCache:
    """Buckets made from compacted blocks, kept for the next query: such a block never
    changes under its key (late samples rewrite it under a new ``through_seq``), and a
    dashboard asks for the same buckets at every refresh. Least recently used entries
    go first once ``max_bytes`` is reached."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.used = 0
        self._entries: OrderedDict[Hashable, BucketRows] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> BucketRows | None:
        with self._lock:
            rows = self._entries.get(key)
            if rows is not None:
                self._entries.move_to_end(key)
            return rows

    def put(self, key: Hashable, rows: BucketRows) -> None:
        size = rows.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.used -= old.nbytes
            self._entries[key] = rows
            self.used += size
            while self.used > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.used -= evicted.nbytes

    def __len__(self) -> int:
        return len(self._entries)
