"""Running mean and variance computed sample by sample, in the order Prometheus does, so
that results agree with it to the last bit.

The loop runs over the samples of a window (or the rows of a group), each iteration
vectorised across all steps: ``values``/``mask`` are ``(items, steps)``.
"""

from __future__ import annotations

import numpy as np

from .values import Bools, Floats


def kahan_inc(inc: Floats, total: Floats, comp: Floats) -> tuple[Floats, Floats]:
    """Go's kahanSumInc (Neumaier's variant)."""
    t = total + inc
    comp = comp + np.where(np.abs(total) >= np.abs(inc), (total - t) + inc, (inc - t) + total)
    return t, comp


def running_mean(values: Floats, mask: Bools, *, compensated: bool = True) -> Floats:
    """Prometheus' incremental mean with its handling of infinities: compensated in
    avg_over_time, plain in the avg aggregation."""
    steps = values.shape[1]
    count = np.zeros(steps)
    mean = np.zeros(steps)
    comp = np.zeros(steps)
    with np.errstate(all="ignore"):
        for v, m in zip(values, mask, strict=True):
            count = count + m
            inf_mean = np.isinf(mean)
            same_inf = inf_mean & np.isinf(v) & ((mean > 0) == (v > 0))
            finite_v = inf_mean & ~np.isinf(v) & ~np.isnan(v)
            update = m & ~same_inf & ~finite_v
            if compensated:
                new_mean, new_comp = kahan_inc(v / count - mean / count, mean, comp)
            else:
                new_mean, new_comp = mean + (v / count - mean / count), comp
            mean = np.where(update, new_mean, mean)
            comp = np.where(update, new_comp, comp)
        return np.where(np.isinf(mean), mean, mean + comp)


def running_variance(values: Floats, mask: Bools, *, compensated: bool = True) -> Floats:
    """Welford's algorithm as Prometheus runs it (population variance): with compensated
    sums in stddev_over_time, plain in the stddev aggregation."""
    steps = values.shape[1]
    count = np.zeros(steps)
    mean, mean_c = np.zeros(steps), np.zeros(steps)
    aux, aux_c = np.zeros(steps), np.zeros(steps)
    with np.errstate(all="ignore"):
        for v, m in zip(values, mask, strict=True):
            count = count + m
            delta = v - (mean + mean_c)
            if compensated:
                new_mean, new_mean_c = kahan_inc(delta / count, mean, mean_c)
                new_aux, new_aux_c = kahan_inc(delta * (v - (new_mean + new_mean_c)), aux, aux_c)
            else:
                new_mean, new_mean_c = mean + delta / count, mean_c
                new_aux, new_aux_c = aux + delta * (v - new_mean), aux_c
            mean = np.where(m, new_mean, mean)
            mean_c = np.where(m, new_mean_c, mean_c)
            aux = np.where(m, new_aux, aux)
            aux_c = np.where(m, new_aux_c, aux_c)
        return (aux + aux_c) / count


def linear_regression(
    ts: Floats, values: Floats, mask: Bools, intercept_ms: Floats
) -> tuple[Floats, Floats]:
    """Least-squares slope (per second) and intercept at ``intercept_ms``, with the
    compensated sums Prometheus uses; a constant series has slope 0."""
    steps = values.shape[1]
    n = np.zeros(steps)
    sums = {k: (np.zeros(steps), np.zeros(steps)) for k in ("x", "y", "xy", "x2")}
    first = values[0]
    constant = np.ones(steps, dtype=bool)
    with np.errstate(all="ignore"):
        for t, v, m in zip(ts, values, mask, strict=True):
            constant &= ~m | (v == first)
            n = n + m
            x = (t - intercept_ms) / 1e3
            for key, inc in (("x", x), ("y", v), ("xy", x * v), ("x2", x * x)):
                total, comp = sums[key]
                new_total, new_comp = kahan_inc(inc, total, comp)
                sums[key] = (np.where(m, new_total, total), np.where(m, new_comp, comp))
        sx, sy, sxy, sx2 = (total + comp for total, comp in sums.values())
        cov = sxy - sx * sy / n
        var = sx2 - sx * sx / n
        slope = cov / var
        intercept = sy / n - slope * sx / n
    slope = np.where(constant, np.where(np.isinf(first), np.nan, 0.0), slope)
    intercept = np.where(constant, np.where(np.isinf(first), np.nan, first), intercept)
    return slope, intercept
