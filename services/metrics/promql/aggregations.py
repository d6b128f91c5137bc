"""Aggregation operators (``sum by (...)`` and friends) over every step at once.

Rows are grouped once by their labels (they do not change between steps); each operator
is then a reduction over the rows of a group, vectorised across steps.
"""

from __future__ import annotations

import numpy as np

from .errors import BAD_DATA, PromQLError
from .format import format_value
from .range_functions import quantile_values
from .running import running_mean
from .values import METRIC_NAME, Floats, Labels, Vector, dedupe, label_key


def group_labels(labels: Labels, names: list[str], without: bool) -> Labels:
    if without:
        drop = {*names, METRIC_NAME}
        return {k: v for k, v in labels.items() if k not in drop}
    return {k: labels[k] for k in names if k in labels}


def _groups(vec: Vector, names: list[str], without: bool) -> tuple[list[Labels], list[list[int]]]:
    index: dict[tuple[tuple[str, str], ...], int] = {}
    out_labels: list[Labels] = []
    rows: list[list[int]] = []
    for row, labels in enumerate(vec.labels):
        g = group_labels(labels, names, without)
        key = label_key(g)
        at = index.get(key)
        if at is None:
            index[key] = len(rows)
            out_labels.append(g)
            rows.append([row])
        else:
            rows[at].append(row)
    return out_labels, rows


def aggregate(
    op: str, vec: Vector, names: list[str], without: bool, param: Floats | str | None
) -> Vector:
    steps = vec.values.shape[1]
    if op in ("topk", "bottomk"):
        assert isinstance(param, np.ndarray)
        return _top(vec, names, without, param, op == "topk")
    if op == "count_values":
        assert isinstance(param, str)
        return _count_values(vec, names, without, param)
    labels, groups = _groups(vec, names, without)
    values = np.zeros((len(groups), steps))
    present = np.zeros((len(groups), steps), dtype=bool)
    for g, rows in enumerate(groups):
        v = vec.values[rows]
        p = vec.present[rows]
        count = p.sum(axis=0)
        present[g] = count > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            values[g] = _reduce(op, v, p, count, param)
    return Vector(labels, values, present)


def _reduce(op: str, v: Floats, p: np.ndarray, count: np.ndarray, param: object) -> Floats:
    if op == "sum":
        return np.where(p, v, 0.0).sum(axis=0)
    if op == "avg":
        return running_mean(v, p, compensated=False)
    if op == "count":
        return count.astype(np.float64)
    if op == "group":
        return np.ones(v.shape[1])
    if op == "min":
        return np.fmin.reduce(np.where(p, v, np.nan), axis=0)
    if op == "max":
        return np.fmax.reduce(np.where(p, v, np.nan), axis=0)
    if op in ("stddev", "stdvar"):
        # Prometheus 2.x: mean of squares minus square of the mean.
        x = np.where(p, v, 0.0)
        mean = x.sum(axis=0) / count
        var = (x * x).sum(axis=0) / count - mean * mean
        return np.sqrt(var) if op == "stddev" else var
    if op == "quantile":
        assert isinstance(param, np.ndarray)
        ordered = np.sort(np.where(p, v, np.nan), axis=0).T
        return quantile_values(ordered, count, param)
    raise PromQLError(BAD_DATA, f"unsupported aggregation: {op}")


def _top(vec: Vector, names: list[str], without: bool, k: Floats, largest: bool) -> Vector:
    """topk/bottomk keep the chosen rows with their own labels; NaN ranks last."""
    _, groups = _groups(vec, names, without)
    keep = np.zeros_like(vec.present)
    kk = np.nan_to_num(k, nan=0.0, posinf=np.iinfo(np.int64).max / 2)
    for rows in groups:
        v = vec.values[rows]
        p = vec.present[rows]
        key = np.where(np.isnan(v), np.inf, -v if largest else v)
        key = np.where(p, key, np.nan)  # absent after NaN values
        order = np.argsort(key, axis=0, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(len(rows))[:, None], axis=0)
        keep[rows] = p & (rank < kk[None, :])
    return Vector(vec.labels, vec.values, keep)


def _count_values(vec: Vector, names: list[str], without: bool, label: str) -> Vector:
    labels, groups = _groups(vec, names, without)
    out_labels: list[Labels] = []
    values: list[Floats] = []
    present: list[np.ndarray] = []
    for g_labels, rows in zip(labels, groups, strict=True):
        v = vec.values[rows]
        p = vec.present[rows]
        texts = {format_value(x) for x in np.unique(v[p]).tolist()}
        if (np.isnan(v) & p).any():
            texts.add("NaN")
        for text in sorted(texts):
            match = p & (v == float(text) if text != "NaN" else np.isnan(v))
            count = match.sum(axis=0)
            out_labels.append({**g_labels, label: text})
            values.append(count.astype(np.float64))
            present.append(count > 0)
    steps = vec.values.shape[1]
    if not out_labels:
        return Vector.empty(steps)
    return dedupe(Vector(out_labels, np.array(values), np.array(present)))
