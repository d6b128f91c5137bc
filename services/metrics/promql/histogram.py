"""``histogram_quantile`` over classic ``_bucket{le="..."}`` series, as Prometheus computes
it: buckets sorted by bound, duplicates merged, counts forced monotonic, linear
interpolation inside the bucket holding the rank, and the +Inf bucket's special cases."""

from __future__ import annotations

import math

import numpy as np

from .values import METRIC_NAME, Floats, Labels, Vector, label_key

_SMALL_DELTA = 1e-12


def _parse_le(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def histogram_quantile(q: Floats, vec: Vector) -> Vector:
    steps = vec.values.shape[1]
    index: dict[tuple[tuple[str, str], ...], int] = {}
    labels: list[Labels] = []
    members: list[list[tuple[float, int]]] = []
    for row, lbl in enumerate(vec.labels):
        bound = _parse_le(lbl.get("le", ""))
        if bound is None:
            continue
        group = {k: v for k, v in lbl.items() if k not in ("le", METRIC_NAME)}
        key = label_key(group)
        if key not in index:
            index[key] = len(labels)
            labels.append(group)
            members.append([])
        members[index[key]].append((bound, row))
    out = np.zeros((len(labels), steps))
    present = np.zeros((len(labels), steps), dtype=bool)
    for g, buckets in enumerate(members):
        buckets.sort(key=lambda b: b[0])
        bounds = np.array([b for b, _ in buckets])
        rows = [r for _, r in buckets]
        counts = vec.values[rows]
        p = vec.present[rows]
        any_p = p.any(axis=0)
        full = p.all(axis=0)
        present[g] = any_p
        if full.any():
            out[g, full] = _quantiles(q[full], bounds, counts[:, full])
        for col in np.flatnonzero(any_p & ~full):
            sel = p[:, col]
            out[g, col] = _quantiles(q[col : col + 1], bounds[sel], counts[sel, col : col + 1])[0]
    return Vector(labels, out, present)


def _quantiles(q: Floats, bounds: Floats, counts: Floats) -> Floats:
    """``counts``: (buckets, steps), buckets sorted by ``bounds``."""
    steps = counts.shape[1]
    if len(bounds) == 0 or not math.isinf(bounds[-1]) or bounds[-1] < 0:
        return _edge(q, np.full(steps, np.nan))
    # Merge buckets with the same bound.
    uniq, first = np.unique(bounds, return_index=True)
    if len(uniq) != len(bounds):
        counts = np.add.reduceat(counts, first, axis=0)
        bounds = uniq
    counts = counts.copy()
    prev = counts[0].copy()
    for i in range(1, len(bounds)):
        curr = counts[i]
        same = curr == prev
        close = ~same & (
            np.abs(curr - prev) <= _SMALL_DELTA * np.maximum(np.abs(curr), np.abs(prev))
        )
        lower = ~same & ~close & (curr < prev)
        fix = close | lower
        counts[i] = np.where(fix, prev, curr)
        prev = np.where(fix | same, prev, curr)
    if len(bounds) < 2:
        return _edge(q, np.full(steps, np.nan))
    total = counts[-1]
    rank = q * total
    reached = counts[:-1] >= rank[None, :]
    b = np.where(reached.any(axis=0), reached.argmax(axis=0), len(bounds) - 1)
    cols = np.arange(steps)
    bucket_end = bounds[np.minimum(b, len(bounds) - 1)]
    bucket_start = np.where(b > 0, bounds[np.maximum(b - 1, 0)], 0.0)
    below = np.where(b > 0, counts[np.maximum(b - 1, 0), cols], 0.0)
    count = counts[np.minimum(b, len(bounds) - 1), cols] - below
    with np.errstate(divide="ignore", invalid="ignore"):
        value = bucket_start + (bucket_end - bucket_start) * ((rank - below) / count)
    value = np.where(b == len(bounds) - 1, bounds[-2], value)
    value = np.where((b == 0) & (bounds[0] <= 0), bounds[0], value)
    value = np.where(total == 0, np.nan, value)
    return _edge(q, value)


def _edge(q: Floats, value: Floats) -> Floats:
    value = np.where(q < 0, -np.inf, value)
    value = np.where(q > 1, np.inf, value)
    return np.where(np.isnan(q), np.nan, value)
