"""Where each step's window falls in a series' samples, found with ``np.searchsorted``.

Windows are closed on both ends, ``[t - range, t]``, and the lookback of an instant
selector reaches back to ``t - lookback`` inclusive: Prometheus 2.x semantics (the
release Debian ships and the golden tests run against).
"""

from __future__ import annotations

import numpy as np

from .values import Bools, Floats, Ints

STALE_NAN_BITS = 0x7FF0000000000002


def stale_mask(values: Floats) -> Bools:
    """Prometheus' staleness marker is one particular NaN bit pattern."""
    return values.view(np.uint64) == np.uint64(STALE_NAN_BITS)


def drop_stale(ts: Ints, values: Floats) -> tuple[Ints, Floats]:
    stale = stale_mask(values)
    if stale.any():
        keep = ~stale
        return ts[keep], values[keep]
    return ts, values


def window_bounds(ts: Ints, ref_ms: Ints, range_ms: int) -> tuple[Ints, Ints]:
    """``[lo, hi)`` sample indexes of the window ending at each reference time."""
    lo = np.searchsorted(ts, ref_ms - range_ms, side="left").astype(np.int64)
    hi = np.searchsorted(ts, ref_ms, side="right").astype(np.int64)
    return lo, hi


def latest_sample(
    ts: Ints, values: Floats, ref_ms: Ints, lookback_ms: int
) -> tuple[Floats, Bools, Ints]:
    """The value an instant selector sees at each step: the newest sample no older than
    the lookback, unless that sample is a staleness marker."""
    idx = np.searchsorted(ts, ref_ms, side="right") - 1
    if len(ts) == 0:
        n = len(ref_ms)
        return np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64)
    safe = np.maximum(idx, 0)
    sample_ts = ts[safe]
    vals = values[safe]
    ok = (idx >= 0) & (sample_ts >= ref_ms - lookback_ms) & ~stale_mask(vals)
    return vals, ok, sample_ts


def gather(values: Floats, lo: Ints, hi: Ints, fill: float) -> tuple[Floats, Bools]:
    """Each window's samples as one row of a ``(steps, longest window)`` array, padded
    with ``fill``: every *_over_time reduction is then one numpy call along axis 1."""
    width = int((hi - lo).max()) if len(lo) else 0
    idx = lo[:, None] + np.arange(width, dtype=np.int64)[None, :]
    mask = idx < hi[:, None]
    if len(values) == 0:
        return np.full(idx.shape, fill), mask
    picked = values[np.minimum(idx, len(values) - 1)]
    return np.where(mask, picked, fill), mask
