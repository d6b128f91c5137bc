"""Where each step's window falls in each series' samples, for all series at once.

Every series' samples are laid end to end in one array, keyed by ``series * span + time``
so the keys are sorted; one ``np.searchsorted`` then finds the window of every
(series, step) pair. Windows are closed on both ends, ``[t - range, t]``, and an instant
selector's lookback reaches back to ``t - lookback`` inclusive: Prometheus 2.x semantics
(the release Debian ships and the golden tests run against).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .values import Bools, Floats, Ints

STALE_NAN_BITS = 0x7FF0000000000002


def stale_mask(values: Floats) -> Bools:
    """Prometheus' staleness marker is one particular NaN bit pattern."""
    return values.view(np.uint64) == np.uint64(STALE_NAN_BITS)


@dataclass
class Flat:
    """``len(starts)`` series, series ``s`` at ``ts[starts[s]:starts[s + 1]]``."""

    ts: Ints
    values: Floats
    starts: Ints  # (series + 1,)

    @property
    def count(self) -> int:
        return len(self.starts) - 1

    @staticmethod
    def of(parts: Sequence[tuple[Ints, Floats]], drop_stale: bool) -> Flat:
        lengths = np.array([len(ts) for ts, _ in parts], dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        if parts:
            ts = np.concatenate([np.asarray(t, dtype=np.int64) for t, _ in parts])
            values = np.concatenate([np.asarray(v, dtype=np.float64) for _, v in parts])
        else:
            ts, values = np.zeros(0, dtype=np.int64), np.zeros(0)
        if drop_stale:
            keep = ~stale_mask(values)
            if not keep.all():
                kept = np.concatenate(([0], np.cumsum(keep)))
                starts = kept[starts].astype(np.int64)
                ts, values = ts[keep], values[keep]
        return Flat(ts, values, starts)

    def bounds(self, ref: Ints, range_ms: int) -> tuple[Ints, Ints]:
        """``[lo, hi)`` sample indexes of each series' window ending at each reference
        time: two ``(series, steps)`` arrays."""
        n = self.count
        if n == 0 or len(self.ts) == 0:
            zero = np.zeros((n, len(ref)), dtype=np.int64)
            return zero, zero
        t0 = min(int(self.ts.min()), int(ref.min()) - range_ms)
        span = max(int(self.ts.max()), int(ref.max())) - t0 + 1
        sid = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.starts))
        keys = sid * span + (self.ts - t0)
        base = (np.arange(n, dtype=np.int64) * span)[:, None]
        lo = np.searchsorted(keys, base + (ref - range_ms - t0)[None, :], side="left")
        hi = np.searchsorted(keys, base + (ref - t0)[None, :], side="right")
        return lo.astype(np.int64), hi.astype(np.int64)


def latest_samples(flat: Flat, ref: Ints, lookback_ms: int) -> tuple[Floats, Bools, Ints]:
    """What an instant selector sees at each step, ``(series, steps)`` arrays of value,
    presence and sample time: the newest sample no older than the lookback, unless that
    sample is a staleness marker."""
    lo, hi = flat.bounds(ref, lookback_ms)
    ok = hi > lo
    if len(flat.ts) == 0:
        return np.zeros(ok.shape), ok, np.zeros(ok.shape, dtype=np.int64)
    last = np.maximum(hi - 1, 0)
    values = flat.values[last]
    ok &= ~stale_mask(values)
    return values, ok, flat.ts[last]


def gather(values: Floats, lo: Ints, hi: Ints, fill: float) -> tuple[Floats, Bools]:
    """Each window's samples as one row of a ``(windows, longest window)`` array, padded
    with ``fill``: every *_over_time reduction is then one numpy call along axis 1."""
    width = int((hi - lo).max()) if len(lo) else 0
    idx = lo[:, None] + np.arange(width, dtype=np.int64)[None, :]
    mask = idx < hi[:, None]
    if len(values) == 0:
        return np.full(idx.shape, fill), mask
    picked = values[np.minimum(idx, len(values) - 1)]
    return np.where(mask, picked, fill), mask
