"""Functions of instant vectors and scalars that work sample by sample."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from .errors import EXECUTION, PromQLError
from .gomath import go_log
from .values import Floats, Labels, Vector, drop_name

# Go's math package constants 1/Ln2 and 1/Ln10, rounded from exact values as Go does.
_INV_LN2 = 1.4426950408889634
_INV_LN10 = 0.4342944819032518


def _log2(x: Floats) -> Floats:
    """Go's math.Log2: exact for powers of two, log(frac)/ln2 + exp otherwise."""
    frac, exp = np.frexp(x)
    return np.where(frac == 0.5, exp - 1.0, go_log(frac) * _INV_LN2 + exp)


def _log10(x: Floats) -> Floats:
    return go_log(x) * _INV_LN10


ELEMENTWISE: dict[str, Callable[[Floats], Floats]] = {
    "abs": np.abs,
    "ceil": np.ceil,
    "floor": np.floor,
    "sqrt": np.sqrt,
    "exp": np.exp,
    "ln": go_log,
    "log2": _log2,
    "log10": _log10,
    "sgn": np.sign,
    "deg": np.degrees,
    "rad": np.radians,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
}


def elementwise(name: str, vec: Vector) -> Vector:
    with np.errstate(all="ignore"):
        values = ELEMENTWISE[name](vec.values)
    return Vector(vec.labels, values, vec.present).with_labels([drop_name(lb) for lb in vec.labels])


def round_to(vec: Vector, nearest: Floats) -> Vector:
    """Prometheus rounds half up: floor(v / to + 0.5) * to, computed with the inverse."""
    inverse = 1.0 / nearest
    with np.errstate(all="ignore"):
        values = np.floor(vec.values * inverse + 0.5) / inverse
    return Vector(vec.labels, values, vec.present).with_labels([drop_name(lb) for lb in vec.labels])


def clamp(vec: Vector, low: Floats | None, high: Floats | None) -> Vector:
    values = vec.values
    present = vec.present
    if low is not None:
        values = np.where(np.isnan(values), values, np.maximum(values, low))
    if high is not None:
        values = np.where(np.isnan(values), values, np.minimum(values, high))
    if low is not None and high is not None:
        present = present & ~(high < low)[None, :]
    return Vector(vec.labels, values, present).with_labels([drop_name(lb) for lb in vec.labels])


_GO_TEMPLATE = re.compile(r"\$(?:\$|\{(\w+)\}|(\w+))")


def _expand(template: str, match: re.Match[str]) -> str:
    """Go's regexp.Expand: $1, ${1}, $name, ${name}; unknown groups expand to ''.
    As in Go, ``$1x`` names group ``1x``."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(2)
        try:
            group = match.group(int(name)) if name.isdigit() else match.group(name)
        except IndexError:
            return ""
        return group or ""

    return _GO_TEMPLATE.sub(one, template)


def label_replace(vec: Vector, dst: str, replacement: str, src: str, regex: str) -> Vector:
    try:
        pattern = re.compile(f"^(?:{regex})$", re.DOTALL)
    except re.error as exc:
        raise PromQLError(
            EXECUTION, f"invalid regular expression in label_replace(): {regex}"
        ) from exc
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", dst):
        raise PromQLError(EXECUTION, f"invalid destination label name in label_replace(): {dst}")
    labels: list[Labels] = []
    for lb in vec.labels:
        match = pattern.match(lb.get(src, ""))
        out = dict(lb)
        if match:
            value = _expand(replacement, match)
            if value:
                out[dst] = value
            else:
                out.pop(dst, None)
        labels.append(out)
    return vec.with_labels(labels)


def label_join(vec: Vector, dst: str, sep: str, sources: list[str]) -> Vector:
    labels: list[Labels] = []
    for lb in vec.labels:
        out = dict(lb)
        value = sep.join(lb.get(s, "") for s in sources)
        if value:
            out[dst] = value
        else:
            out.pop(dst, None)
        labels.append(out)
    return vec.with_labels(labels)


def _calendar_field(name: str, seconds: Floats) -> Floats:
    """One calendar field (UTC) of Unix times, as Go's time package computes it."""
    with np.errstate(invalid="ignore"):
        whole = np.trunc(np.nan_to_num(seconds)).astype(np.int64)
    when = whole.astype("datetime64[s]")
    day = when.astype("datetime64[D]")
    month = when.astype("datetime64[M]")
    year = when.astype("datetime64[Y]")
    if name == "year":
        field = year.astype(np.int64) + 1970
    elif name == "month":
        field = month.astype(np.int64) % 12 + 1
    elif name == "day_of_month":
        field = (day - month.astype("datetime64[D]")).astype(np.int64) + 1
    elif name == "day_of_year":
        field = (day - year.astype("datetime64[D]")).astype(np.int64) + 1
    elif name == "day_of_week":
        field = (day.astype(np.int64) + 4) % 7  # 1970-01-01 was a Thursday
    elif name == "days_in_month":
        field = ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(
            np.int64
        )
    elif name == "hour":
        field = (whole // 3600) % 24
    else:  # minute
        field = (whole // 60) % 60
    return np.where(np.isnan(seconds), np.nan, field.astype(np.float64))


CALENDAR = (
    "year",
    "month",
    "day_of_month",
    "day_of_year",
    "day_of_week",
    "days_in_month",
    "hour",
    "minute",
)


def calendar(name: str, vec: Vector) -> Vector:
    values = _calendar_field(name, vec.values.ravel()).reshape(vec.values.shape)
    return Vector(vec.labels, values, vec.present).with_labels([drop_name(lb) for lb in vec.labels])
