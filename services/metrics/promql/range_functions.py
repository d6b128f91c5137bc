"""Functions of a range vector, computed for every series at every step at once.

Inputs are the flat samples of all series and the ``[lo, hi)`` window of each
(series, step) pair. Counters are handled through a reset-corrected cumulative sum, so
the increase over any window is one subtraction; the extrapolation is Prometheus'
``extrapolatedRate`` (2.x: the zero point of a counter is checked before the threshold).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .running import linear_regression, running_mean, running_variance
from .source import Want
from .values import Bools, Floats, Ints
from .windows import Flat, gather

Out = tuple[Floats, Bools]  # values and presence, both (series, steps)
Param = Floats | None  # the scalar argument of quantile_over_time, per step
# (flat, lo, hi, ref, range_ms, param) -> (values, present)
RangeFn = Callable[[Flat, Ints, Ints, Ints, int, Param], Out]

# Window element budget per gather; longer windows are processed in chunks.
_GATHER_BUDGET = 4_000_000


def _reset_corrected(values: Floats) -> Floats:
    """Cumulative counter: each drop adds back the value before it (Prometheus' rule).
    Drops between two series are counted too, but no window spans two series."""
    if len(values) < 2:
        return values.copy()
    prev = values[:-1]
    drops = np.where(values[1:] < prev, prev, 0.0)
    return values + np.concatenate(([0.0], np.cumsum(drops)))


def _extrapolated(
    flat: Flat, lo: Ints, hi: Ints, ref: Ints, range_ms: int, *, counter: bool, rate: bool
) -> tuple[Floats, Bools]:
    ok = hi - lo >= 2
    out = np.zeros(ok.shape)
    if not ok.any():
        return out, ok
    first, last = lo[ok], hi[ok] - 1
    values, ts = flat.values, flat.ts
    cum = _reset_corrected(values) if counter else values
    result = cum[last] - cum[first]
    first_t, last_t = ts[first], ts[last]
    range_end = np.broadcast_to(ref[None, :], ok.shape)[ok]
    range_start = range_end - range_ms
    to_start = (first_t - range_start) / 1000.0
    to_end = (range_end - last_t) / 1000.0
    sampled = (last_t - first_t) / 1000.0
    average = sampled / (last - first)
    with np.errstate(divide="ignore", invalid="ignore"):
        if counter:
            first_v = values[first]
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
        out[ok] = result * factor
    return out, ok


def rate(f: Flat, lo: Ints, hi: Ints, ref: Ints, r: int, _p: Param) -> Out:
    return _extrapolated(f, lo, hi, ref, r, counter=True, rate=True)


def increase(f: Flat, lo: Ints, hi: Ints, ref: Ints, r: int, _p: Param) -> Out:
    return _extrapolated(f, lo, hi, ref, r, counter=True, rate=False)


def delta(f: Flat, lo: Ints, hi: Ints, ref: Ints, r: int, _p: Param) -> Out:
    return _extrapolated(f, lo, hi, ref, r, counter=False, rate=False)


def _last_two(f: Flat, lo: Ints, hi: Ints) -> tuple[Bools, Floats, Floats, Ints, Ints]:
    ok = hi - lo >= 2
    if len(f.values) == 0:
        z, zi = np.zeros(ok.shape), np.zeros(ok.shape, dtype=np.int64)
        return ok, z, z, zi, zi
    last = np.where(ok, hi - 1, 0)
    prev = np.where(ok, hi - 2, 0)
    return ok, f.values[last], f.values[prev], f.ts[last], f.ts[prev]


def irate(f: Flat, lo: Ints, hi: Ints, _ref: Ints, _r: int, _p: Param) -> Out:
    ok, last, prev, last_t, prev_t = _last_two(f, lo, hi)
    diff = np.where(last < prev, last, last - prev)
    with np.errstate(divide="ignore", invalid="ignore"):
        return diff / ((last_t - prev_t) / 1000.0), ok


def idelta(f: Flat, lo: Ints, hi: Ints, _ref: Ints, _r: int, _p: Param) -> Out:
    ok, last, prev, _, _ = _last_two(f, lo, hi)
    return last - prev, ok


def _pairs_in_window(flags: Bools, lo: Ints, hi: Ints) -> tuple[Floats, Bools]:
    """How many flagged sample pairs (i - 1, i) lie inside each window."""
    ok = hi > lo
    cum = np.concatenate(([0], np.cumsum(flags)))  # cum[i]: flagged pairs ending ≤ i
    last = np.where(ok, hi - 1, 0)
    first = np.where(ok, lo, 0)
    return (cum[last] - cum[first]).astype(np.float64), ok


def resets(f: Flat, lo: Ints, hi: Ints, _ref: Ints, _r: int, _p: Param) -> Out:
    return _pairs_in_window(f.values[1:] < f.values[:-1], lo, hi)


def changes(f: Flat, lo: Ints, hi: Ints, _ref: Ints, _r: int, _p: Param) -> Out:
    a, b = f.values[1:], f.values[:-1]
    return _pairs_in_window((a != b) & ~(np.isnan(a) & np.isnan(b)), lo, hi)


Reduce = Callable[[Floats, Bools, Ints, Floats | None], Floats]


def _windowed(reduce: Reduce, fill: float) -> RangeFn:
    """Run a reduction over gathered windows, a bounded number of windows at a time."""

    def fn(f: Flat, lo: Ints, hi: Ints, _ref: Ints, _r: int, param: Param) -> Out:
        shape = lo.shape
        lo_r, hi_r = lo.ravel(), hi.ravel()
        counts = hi_r - lo_r
        params = None if param is None else np.broadcast_to(param[None, :], shape).ravel()
        out = np.zeros(len(lo_r))
        width = max(int(counts.max()) if len(counts) else 0, 1)
        chunk = max(_GATHER_BUDGET // width, 1)
        for start in range(0, len(lo_r), chunk):
            part = slice(start, start + chunk)
            windows, mask = gather(f.values, lo_r[part], hi_r[part], fill)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[part] = reduce(
                    windows, mask, counts[part], None if params is None else params[part]
                )
        return out.reshape(shape), (counts > 0).reshape(shape)

    return fn


def _sum(w: Floats, _m: Bools, _c: Ints, _p: Floats | None) -> Floats:
    return w.sum(axis=1)


def _avg(w: Floats, m: Bools, _c: Ints, _p: Floats | None) -> Floats:
    return running_mean(w.T, m.T)


def _min(w: Floats, _m: Bools, _c: Ints, _p: Floats | None) -> Floats:
    return np.fmin.reduce(w, axis=1) if w.shape[1] else np.zeros(len(w))


def _max(w: Floats, _m: Bools, _c: Ints, _p: Floats | None) -> Floats:
    return np.fmax.reduce(w, axis=1) if w.shape[1] else np.zeros(len(w))


def _stdvar(w: Floats, m: Bools, _c: Ints, _p: Floats | None) -> Floats:
    return running_variance(w.T, m.T)


def _stddev(w: Floats, m: Bools, c: Ints, p: Floats | None) -> Floats:
    return np.sqrt(_stdvar(w, m, c, p))


def quantile_values(sorted_rows: Floats, counts: Ints, q: Floats) -> Floats:
    """Prometheus' ``quantile``: linear interpolation between the closest ranks of each
    row's first ``counts`` (ascending) values; q < 0 → -Inf, q > 1 → +Inf."""
    n = counts.astype(np.float64)
    rank = q * (n - 1)
    lower = np.maximum(0.0, np.floor(rank))
    upper = np.minimum(n - 1, lower + 1)
    weight = rank - np.floor(rank)
    if sorted_rows.shape[1] == 0:
        out = np.full(len(counts), np.nan)
    else:
        top = sorted_rows.shape[1] - 1
        rows = np.arange(len(sorted_rows))
        li = np.clip(np.nan_to_num(lower), 0, top).astype(np.int64)
        ui = np.clip(np.nan_to_num(upper), 0, top).astype(np.int64)
        with np.errstate(invalid="ignore"):
            out = sorted_rows[rows, li] * (1 - weight) + sorted_rows[rows, ui] * weight
    out = np.where(q < 0, -np.inf, out)
    out = np.where(q > 1, np.inf, out)
    return np.where(np.isnan(q), np.nan, out)


def _quantile(w: Floats, _m: Bools, c: Ints, q: Floats | None) -> Floats:
    assert q is not None
    return quantile_values(np.sort(w, axis=1), c, q)


def _regression(f: Flat, lo: Ints, hi: Ints, ref: Ints, param: Param, predict: bool) -> Out:
    shape = lo.shape
    ok = hi - lo >= 2
    out = np.zeros(shape)
    if not ok.any():
        return out, ok
    lo_r, hi_r = lo[ok], hi[ok]
    ref_r = np.broadcast_to(ref[None, :], shape)[ok]
    values, mask = gather(f.values, lo_r, hi_r, np.nan)
    times, _ = gather(f.ts.astype(np.float64), lo_r, hi_r, np.nan)
    intercept_at = ref_r.astype(np.float64) if predict else times[:, 0]
    slope, intercept = linear_regression(times.T, values.T, mask.T, intercept_at)
    if predict:
        assert param is not None
        horizon = np.broadcast_to(param[None, :], shape)[ok]
        out[ok] = slope * horizon + intercept
    else:
        out[ok] = slope
    return out, ok


def deriv(f: Flat, lo: Ints, hi: Ints, ref: Ints, _r: int, _p: Param) -> Out:
    return _regression(f, lo, hi, ref, None, predict=False)


def predict_linear(f: Flat, lo: Ints, hi: Ints, ref: Ints, _r: int, p: Param) -> Out:
    return _regression(f, lo, hi, ref, p, predict=True)


def count_over_time(_f: Flat, lo: Ints, hi: Ints, _ref: Ints, _r: int, _p: Param) -> Out:
    return (hi - lo).astype(np.float64), hi > lo


def last_over_time(f: Flat, lo: Ints, hi: Ints, _ref: Ints, _r: int, _p: Param) -> Out:
    ok = hi > lo
    if len(f.values) == 0:
        return np.zeros(ok.shape), ok
    return f.values[np.maximum(hi - 1, 0)], ok


def present_over_time(_f: Flat, lo: Ints, hi: Ints, _ref: Ints, _r: int, _p: Param) -> Out:
    return np.ones(lo.shape), hi > lo


sum_over_time = _windowed(_sum, 0.0)

# name -> (function, which per-bucket value a rollup must give)
RANGE_FUNCTIONS: dict[str, tuple[RangeFn, Want]] = {
    "rate": (rate, Want.LAST),
    "increase": (increase, Want.LAST),
    "delta": (delta, Want.LAST),
    "irate": (irate, Want.LAST),
    "idelta": (idelta, Want.LAST),
    "resets": (resets, Want.LAST),
    "changes": (changes, Want.LAST),
    "sum_over_time": (sum_over_time, Want.SUM),
    "avg_over_time": (_windowed(_avg, 0.0), Want.AVG),
    "min_over_time": (_windowed(_min, np.nan), Want.MIN),
    "max_over_time": (_windowed(_max, np.nan), Want.MAX),
    "count_over_time": (count_over_time, Want.COUNT),
    "last_over_time": (last_over_time, Want.LAST),
    "present_over_time": (present_over_time, Want.LAST),
    "stddev_over_time": (_windowed(_stddev, 0.0), Want.LAST),
    "stdvar_over_time": (_windowed(_stdvar, 0.0), Want.LAST),
    "quantile_over_time": (_windowed(_quantile, np.nan), Want.LAST),
    "deriv": (deriv, Want.LAST),
    "predict_linear": (predict_linear, Want.LAST),
}
