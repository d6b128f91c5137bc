"""Functions of a range vector, each computed for one series at every step at once.

Counters are handled through a reset-corrected cumulative sum, so the increase over any
window is one subtraction; the extrapolation is Prometheus' ``extrapolatedRate``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .running import running_mean, running_variance
from .source import Want
from .values import Bools, Floats, Ints
from .windows import gather

# (ts, values, ref_ms, range_ms, param) -> (values, present), one series, all steps.
RangeFn = Callable[[Ints, Floats, Ints, int, Floats | None], tuple[Floats, Bools]]

# Window element budget per gather; larger windows are processed in step chunks.
_GATHER_BUDGET = 4_000_000


def _reset_corrected(values: Floats) -> Floats:
    """Cumulative counter: each drop adds back the value before it (Prometheus' rule)."""
    if len(values) < 2:
        return values.copy()
    prev = values[:-1]
    drops = np.where(values[1:] < prev, prev, 0.0)
    return values + np.concatenate(([0.0], np.cumsum(drops)))


def _extrapolated(
    ts: Ints, values: Floats, ref: Ints, range_ms: int, *, counter: bool, rate: bool
) -> tuple[Floats, Bools]:
    lo, hi = np.searchsorted(ts, ref - range_ms, "left"), np.searchsorted(ts, ref, "right")
    ok = hi - lo >= 2
    n = len(ref)
    if not ok.any():
        return np.zeros(n), ok
    first, last = lo[ok], hi[ok] - 1
    cum = _reset_corrected(values) if counter else values
    result = cum[last] - cum[first]
    first_t, last_t = ts[first], ts[last]
    range_end = ref[ok]
    range_start = range_end - range_ms
    to_start = (first_t - range_start) / 1000.0
    to_end = (range_end - last_t) / 1000.0
    sampled = (last_t - first_t) / 1000.0
    average = sampled / (last - first)
    if counter:
        first_v = values[first]
        with np.errstate(divide="ignore", invalid="ignore"):
            to_zero = sampled * (first_v / result)
        clamp = (result > 0) & (first_v >= 0) & (to_zero < to_start)
        to_start = np.where(clamp, to_zero, to_start)
    threshold = average * 1.1
    interval = (
        sampled
        + np.where(to_start < threshold, to_start, average / 2)
        + np.where(to_end < threshold, to_end, average / 2)
    )
    factor = interval / sampled
    if rate:
        factor = factor / (range_ms / 1000.0)
    out = np.zeros(n)
    out[ok] = result * factor
    return out, ok


def rate(ts: Ints, v: Floats, ref: Ints, r: int, _p: Floats | None) -> tuple[Floats, Bools]:
    return _extrapolated(ts, v, ref, r, counter=True, rate=True)


def increase(ts: Ints, v: Floats, ref: Ints, r: int, _p: Floats | None) -> tuple[Floats, Bools]:
    return _extrapolated(ts, v, ref, r, counter=True, rate=False)


def delta(ts: Ints, v: Floats, ref: Ints, r: int, _p: Floats | None) -> tuple[Floats, Bools]:
    return _extrapolated(ts, v, ref, r, counter=False, rate=False)


def _last_two(ts: Ints, v: Floats, ref: Ints, r: int) -> tuple[Bools, Floats, Floats, Ints, Ints]:
    lo, hi = np.searchsorted(ts, ref - r, "left"), np.searchsorted(ts, ref, "right")
    ok = hi - lo >= 2
    last = np.where(ok, hi - 1, 0)
    prev = np.where(ok, hi - 2, 0)
    if len(v) == 0:
        z = np.zeros(len(ref))
        zi = np.zeros(len(ref), dtype=np.int64)
        return ok, z, z, zi, zi
    return ok, v[last], v[prev], ts[last], ts[prev]


def irate(ts: Ints, v: Floats, ref: Ints, r: int, _p: Floats | None) -> tuple[Floats, Bools]:
    ok, last, prev, last_t, prev_t = _last_two(ts, v, ref, r)
    diff = np.where(last < prev, last, last - prev)
    with np.errstate(divide="ignore", invalid="ignore"):
        return diff / ((last_t - prev_t) / 1000.0), ok


def idelta(ts: Ints, v: Floats, ref: Ints, r: int, _p: Floats | None) -> tuple[Floats, Bools]:
    ok, last, prev, _, _ = _last_two(ts, v, ref, r)
    return last - prev, ok


def _count_between(flags: Bools, ts: Ints, ref: Ints, r: int) -> tuple[Floats, Bools]:
    """How many flagged sample pairs (i-1, i) lie inside each window."""
    lo, hi = np.searchsorted(ts, ref - r, "left"), np.searchsorted(ts, ref, "right")
    ok = hi > lo
    cum = np.concatenate(([0], np.cumsum(flags)))  # cum[i] = flags among pairs ending <= i
    last = np.where(ok, hi - 1, 0)
    first = np.where(ok, lo, 0)
    return (cum[last] - cum[first]).astype(np.float64), ok


def resets(ts: Ints, v: Floats, ref: Ints, r: int, _p: Floats | None) -> tuple[Floats, Bools]:
    return _count_between(v[1:] < v[:-1], ts, ref, r)


def changes(ts: Ints, v: Floats, ref: Ints, r: int, _p: Floats | None) -> tuple[Floats, Bools]:
    a, b = v[1:], v[:-1]
    return _count_between((a != b) & ~(np.isnan(a) & np.isnan(b)), ts, ref, r)


def _chunked(reduce: Callable[[Floats, Bools, Ints, slice], Floats], fill: float) -> RangeFn:
    """Run a reduction over gathered windows, a bounded number of steps at a time."""

    def fn(ts: Ints, v: Floats, ref: Ints, r: int, _p: Floats | None) -> tuple[Floats, Bools]:
        lo, hi = np.searchsorted(ts, ref - r, "left"), np.searchsorted(ts, ref, "right")
        counts = (hi - lo).astype(np.int64)
        ok = counts > 0
        out = np.zeros(len(ref))
        width = max(int(counts.max()) if len(counts) else 0, 1)
        chunk = max(_GATHER_BUDGET // width, 1)
        for start in range(0, len(ref), chunk):
            part = slice(start, start + chunk)
            windows, mask = gather(v, lo[part], hi[part], fill)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[part] = reduce(windows, mask, counts[part], part)
        return out, ok

    return fn


def _sum(w: Floats, _m: Bools, _c: Ints, _s: slice) -> Floats:
    return w.sum(axis=1)


def _avg(w: Floats, m: Bools, _c: Ints, _s: slice) -> Floats:
    return running_mean(w.T, m.T)


def _min(w: Floats, _m: Bools, _c: Ints, _s: slice) -> Floats:
    return np.fmin.reduce(w, axis=1) if w.shape[1] else np.zeros(len(w))


def _max(w: Floats, _m: Bools, _c: Ints, _s: slice) -> Floats:
    return np.fmax.reduce(w, axis=1) if w.shape[1] else np.zeros(len(w))


def _stdvar(w: Floats, m: Bools, _c: Ints, _s: slice) -> Floats:
    return running_variance(w.T, m.T)


def _stddev(w: Floats, m: Bools, c: Ints, s: slice) -> Floats:
    return np.sqrt(_stdvar(w, m, c, s))


def count_over_time(
    ts: Ints, v: Floats, ref: Ints, r: int, _p: Floats | None
) -> tuple[Floats, Bools]:
    lo, hi = np.searchsorted(ts, ref - r, "left"), np.searchsorted(ts, ref, "right")
    return (hi - lo).astype(np.float64), hi > lo


def last_over_time(
    ts: Ints, v: Floats, ref: Ints, r: int, _p: Floats | None
) -> tuple[Floats, Bools]:
    lo, hi = np.searchsorted(ts, ref - r, "left"), np.searchsorted(ts, ref, "right")
    ok = hi > lo
    if len(v) == 0:
        return np.zeros(len(ref)), ok
    return v[np.maximum(hi - 1, 0)], ok


def present_over_time(
    ts: Ints, v: Floats, ref: Ints, r: int, _p: Floats | None
) -> tuple[Floats, Bools]:
    lo, hi = np.searchsorted(ts, ref - r, "left"), np.searchsorted(ts, ref, "right")
    return np.ones(len(ref)), hi > lo


def quantile_values(sorted_rows: Floats, counts: Ints, q: Floats) -> Floats:
    """Prometheus' ``quantile``: linear interpolation between the closest ranks of each
    row's first ``counts`` (ascending) values; q < 0 → -Inf, q > 1 → +Inf."""
    n = counts.astype(np.float64)
    rank = q * (n - 1)
    lower = np.maximum(0.0, np.floor(rank))
    upper = np.minimum(n - 1, lower + 1)
    weight = rank - np.floor(rank)
    rows = np.arange(len(sorted_rows))
    li = np.clip(np.nan_to_num(lower), 0, max(sorted_rows.shape[1] - 1, 0)).astype(np.int64)
    ui = np.clip(np.nan_to_num(upper), 0, max(sorted_rows.shape[1] - 1, 0)).astype(np.int64)
    if sorted_rows.shape[1] == 0:
        out = np.full(len(counts), np.nan)
    else:
        out = sorted_rows[rows, li] * (1 - weight) + sorted_rows[rows, ui] * weight
    out = np.where(q < 0, -np.inf, out)
    out = np.where(q > 1, np.inf, out)
    return np.where(np.isnan(q), np.nan, out)


def quantile_over_time(
    ts: Ints, v: Floats, ref: Ints, r: int, q: Floats | None
) -> tuple[Floats, Bools]:
    assert q is not None

    def reduce(w: Floats, _m: Bools, c: Ints, part: slice) -> Floats:
        return quantile_values(np.sort(w, axis=1), c, q[part])

    return _chunked(reduce, np.nan)(ts, v, ref, r, q)


# name -> (function, which bucket value a rollup must give, keeps the metric name)
RANGE_FUNCTIONS: dict[str, tuple[RangeFn, Want]] = {
    "rate": (rate, Want.LAST),
    "increase": (increase, Want.LAST),
    "delta": (delta, Want.LAST),
    "irate": (irate, Want.LAST),
    "idelta": (idelta, Want.LAST),
    "resets": (resets, Want.LAST),
    "changes": (changes, Want.LAST),
    "sum_over_time": (_chunked(_sum, 0.0), Want.SUM),
    "avg_over_time": (_chunked(_avg, 0.0), Want.AVG),
    "min_over_time": (_chunked(_min, np.nan), Want.MIN),
    "max_over_time": (_chunked(_max, np.nan), Want.MAX),
    "count_over_time": (count_over_time, Want.COUNT),
    "last_over_time": (last_over_time, Want.LAST),
    "present_over_time": (present_over_time, Want.LAST),
    "stddev_over_time": (_chunked(_stddev, 0.0), Want.LAST),
    "stdvar_over_time": (_chunked(_stdvar, 0.0), Want.LAST),
    "quantile_over_time": (quantile_over_time, Want.LAST),
}
