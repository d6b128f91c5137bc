"""Binary operators: arithmetic, comparisons and set operators between vectors and
scalars, with Prometheus' label matching (on/ignoring, group_left/group_right)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .errors import BAD_DATA, EXECUTION, PromQLError
from .values import METRIC_NAME, Bools, Floats, Labels, Scalar, Vector, dedupe, drop_name

Op = Callable[[Floats, Floats], Floats]

ARITHMETIC: dict[str, Op] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "%": np.fmod,
    "^": np.power,
    "atan2": np.arctan2,
}
COMPARISON: dict[str, Callable[[Floats, Floats], Bools]] = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
}
SET_OPS = ("and", "or", "unless")


@dataclass
class Matching:
    card: str = "one-to-one"  # one-to-one | many-to-one | one-to-many | many-to-many
    on: bool = False
    labels: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=list)
    return_bool: bool = False


def _apply(op: str, lhs: Floats, rhs: Floats) -> tuple[Floats, Bools | None]:
    """(value, keep); keep is None for arithmetic. Comparisons keep the left value."""
    with np.errstate(all="ignore"):
        if op in ARITHMETIC:
            return ARITHMETIC[op](lhs, rhs), None
        if op in COMPARISON:
            return lhs, COMPARISON[op](lhs, rhs)
    raise PromQLError(BAD_DATA, f"operator {op!r} not allowed here")


def scalar_scalar(op: str, lhs: Scalar, rhs: Scalar, return_bool: bool) -> Scalar:
    value, keep = _apply(op, lhs.values, rhs.values)
    if keep is not None:
        value = keep.astype(np.float64)
    return Scalar(np.asarray(value, dtype=np.float64))


def vector_scalar(op: str, vec: Vector, scalar: Scalar, swap: bool, return_bool: bool) -> Vector:
    s = np.broadcast_to(scalar.values, vec.values.shape)
    lhs, rhs = (s, vec.values) if swap else (vec.values, s)
    value, keep = _apply(op, lhs, rhs)
    if keep is None:
        out = Vector(vec.labels, np.asarray(value, dtype=np.float64), vec.present.copy())
        return out.with_labels([drop_name(lb) for lb in vec.labels])
    if return_bool:
        out = Vector(vec.labels, keep.astype(np.float64), vec.present.copy())
        return out.with_labels([drop_name(lb) for lb in vec.labels])
    # The vector's own value is kept, whichever side it is on.
    return Vector(vec.labels, vec.values, vec.present & keep)


def _signature(labels: Labels, m: Matching) -> tuple[tuple[str, str], ...]:
    if m.on:
        return tuple(sorted((k, v) for k, v in labels.items() if k in m.labels))
    skip = {METRIC_NAME, *m.labels}
    return tuple(sorted((k, v) for k, v in labels.items() if k not in skip))


def _by_signature(vec: Vector, m: Matching) -> dict[tuple[tuple[str, str], ...], list[int]]:
    out: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for row, labels in enumerate(vec.labels):
        out.setdefault(_signature(labels, m), []).append(row)
    return out


def set_operation(op: str, lhs: Vector, rhs: Vector, m: Matching) -> Vector:
    steps = lhs.values.shape[1]
    rsigs = _by_signature(rhs, m)
    rhs_any = {sig: rhs.present[rows].any(axis=0) for sig, rows in rsigs.items()}
    none = np.zeros(steps, dtype=bool)
    lsig = [_signature(lb, m) for lb in lhs.labels]
    if op == "and":
        mask = np.array([rhs_any.get(s, none) for s in lsig]).reshape(lhs.present.shape)
        return Vector(lhs.labels, lhs.values, lhs.present & mask)
    if op == "unless":
        mask = np.array([rhs_any.get(s, none) for s in lsig]).reshape(lhs.present.shape)
        return Vector(lhs.labels, lhs.values, lhs.present & ~mask)
    # or: every left sample, and right samples whose signature is absent on the left.
    lhs_any: dict[tuple[tuple[str, str], ...], Bools] = {}
    for row, sig in enumerate(lsig):
        lhs_any[sig] = lhs_any.get(sig, none) | lhs.present[row]
    rsig = [_signature(lb, m) for lb in rhs.labels]
    rmask = np.array([~lhs_any.get(s, none) for s in rsig]).reshape(rhs.present.shape)
    return dedupe(
        Vector(
            lhs.labels + rhs.labels,
            np.concatenate([lhs.values, rhs.values]),
            np.concatenate([lhs.present, rhs.present & rmask]),
        )
    )


def _result_labels(many: Labels, one: Labels, op: str, m: Matching) -> Labels:
    out = dict(many)
    if op in ARITHMETIC:
        out.pop(METRIC_NAME, None)
    if m.card == "one-to-one":
        if m.on:
            out = {k: v for k, v in out.items() if k in m.labels}
        else:
            for name in m.labels:
                out.pop(name, None)
    for name in m.include:
        if one.get(name):
            out[name] = one[name]
        else:
            out.pop(name, None)
    return out


def vector_vector(op: str, lhs: Vector, rhs: Vector, m: Matching) -> Vector:
    if op in SET_OPS:
        return set_operation(op, lhs, rhs, m)
    steps = lhs.values.shape[1]
    swap = m.card == "one-to-many"
    many, one = (rhs, lhs) if swap else (lhs, rhs)
    one_sigs = _by_signature(one, m)
    for rows in one_sigs.values():
        if len(rows) > 1 and (one.present[rows].sum(axis=0) > 1).any():
            side = "left" if swap else "right"
            raise PromQLError(
                EXECUTION,
                f"found duplicate series for the match group on the {side} hand-side of the "
                "operation; many-to-many matching not allowed: matching labels must be "
                "unique on one side",
            )
    out_labels: list[Labels] = []
    out_values: list[Floats] = []
    out_present: list[Bools] = []
    seen_many: dict[tuple[tuple[str, str], ...], Bools] = {}
    for row, labels in enumerate(many.labels):
        sig = _signature(labels, m)
        matches = one_sigs.get(sig)
        if not matches:
            continue
        for other in matches:
            present = many.present[row] & one.present[other]
            if not present.any():
                continue
            left, right = many.values[row], one.values[other]
            if swap:
                left, right = right, left
            value, keep = _apply(op, left, right)
            result = _result_labels(labels, one.labels[other], op, m)
            if keep is not None:
                if m.return_bool:
                    value = keep.astype(np.float64)
                    result.pop(METRIC_NAME, None)
                else:
                    present = present & keep
            if m.card == "one-to-one":
                before = seen_many.get(sig)
                if before is not None and (before & present).any():
                    raise PromQLError(
                        EXECUTION,
                        "multiple matches for labels: many-to-one matching must be explicit "
                        "(group_left/group_right)",
                    )
                seen_many[sig] = present if before is None else before | present
            out_labels.append(result)
            out_values.append(value)
            out_present.append(present)
    if not out_labels:
        return Vector.empty(steps)
    vec = Vector(out_labels, np.array(out_values), np.array(out_present))
    try:
        return dedupe(vec)
    except PromQLError:
        raise PromQLError(
            EXECUTION,
            "multiple matches for labels: grouping labels must ensure unique matches",
        ) from None
