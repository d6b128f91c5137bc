"""Rollup buckets of one series in numpy: made from its samples, merged with stored
rollup rows, and read as the value a PromQL function wants.

The samples of a series come out of the store in time order, so its buckets are runs
of equal ``ts - ts % bucket``: ``reduceat`` over the run starts aggregates them all at
once, far faster than a SQL ``GROUP BY`` over every sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Buckets:
    """Aggregates of consecutive buckets of one series, oldest first."""

    bucket: Ints
    last_ts: Ints
    v_min: Floats
    v_max: Floats
    v_sum: Floats
    v_count: Floats
    v_last: Floats

    @classmethod
    def of_samples(cls, ts: Ints, values: Floats, bucket_ms: int) -> Buckets:
        """``ts`` strictly rising, as a series' samples are."""
        bucket = ts - ts % bucket_ms
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        ends = np.r_[starts[1:], len(ts)]
        return cls(
            bucket[starts],
            ts[ends - 1],
            np.minimum.reduceat(values, starts),
            np.maximum.reduceat(values, starts),
            np.add.reduceat(values, starts),
            (ends - starts).astype(np.float64),
            values[ends - 1],
        )

    def merged(self, other: Buckets) -> Buckets:
        """Both sets of rows as one: rows of the same bucket combine (a stored rollup and
        late samples rolled up on the fly)."""
        fields = [
            np.concatenate([a, b]) for a, b in zip(self._columns(), other._columns(), strict=True)
        ]
        bucket, last_ts = fields[0], fields[1]
        order = np.lexsort((last_ts, bucket))  # by bucket, the newest last within one
        bucket, last_ts, v_min, v_max, v_sum, v_count, v_last = (f[order] for f in fields)
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        ends = np.r_[starts[1:], len(bucket)]
        return Buckets(
            bucket[starts],
            last_ts[ends - 1],
            np.minimum.reduceat(v_min, starts),
            np.maximum.reduceat(v_max, starts),
            np.add.reduceat(v_sum, starts),
            np.add.reduceat(v_count, starts),
            v_last[ends - 1],
        )

    def _columns(self) -> tuple[npt.NDArray[np.int64] | npt.NDArray[np.float64], ...]:
        return (
            self.bucket,
            self.last_ts,
            self.v_min,
            self.v_max,
            self.v_sum,
            self.v_count,
            self.v_last,
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
