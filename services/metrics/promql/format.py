"""Numbers and times printed exactly as Prometheus' JSON API prints them."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


def format_value(v: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)`` with Prometheus' Inf/NaN spellings."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    text = repr(v)
    if "e" in text:
        return np.format_float_positional(v, unique=True, trim="-")
    if text.endswith(".0"):
        return text[:-2]
    return text


def format_time(ms: int) -> float | int:
    """Seconds with millisecond precision, as a JSON number (no trailing ``.0``)."""
    if ms % 1000 == 0:
        return ms // 1000
    return ms / 1000


def format_values(values: npt.NDArray[np.float64]) -> list[str]:
    """``format_value`` over an array, with C-speed paths for the two common cases: all
    integers (counters), and all plain decimals that ``repr`` prints as Go does."""
    magnitude = np.abs(values)
    finite = np.isfinite(values)
    if finite.all():
        integral = (values == np.trunc(values)) & (magnitude < 1e15)
        if integral.all() and not np.any((values == 0) & np.signbit(values)):  # -0.0: "-0"
            return list(map(str, values.astype(np.int64).tolist()))
        if not integral.any() and ((magnitude >= 1e-4) & (magnitude < 1e16)).all():
            return list(map(repr, values.tolist()))
    return [
        format_value(v)
        if "e" in text or text[-1] in "nf"
        else text[:-2]
        if text[-2:] == ".0"
        else text
        for text, v in zip(map(repr, values.tolist()), values.tolist(), strict=True)
    ]
