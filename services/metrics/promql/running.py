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
