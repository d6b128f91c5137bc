"""The HTTP response body of a query, ``{"status":"success","data":...}``, as bytes.

Byte for byte what ``orjson.dumps`` makes of ``Result.to_prometheus()``, built without a
Python string and list per point: a day of 60 s steps over a hundred series is 144k
points, and formatting them one by one costs several times the evaluation itself.

Numbers are formatted in bulk by orjson (its shortest round-trip digits are Python's
``repr``, hence Go's ``FormatFloat(v, 'f', -1, 64)`` for plain decimals); integers lose
the ``.0``, and the few values Go prints otherwise (exponents, NaN, Inf) are formatted
one by one. Points are then joined with ``bytes.join`` over lists filled by slice
assignment, so the per-point work stays in C.
"""

from __future__ import annotations

import numpy as np
import orjson

from .format import format_time, format_value
from .result import Result, sorted_labels
from .values import Floats, Ints, Matrix, Scalar, Vector, label_key

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_PLAIN_LOW = 1e-4  # below it repr (and orjson) switch to exponents or differ from Go
_INTEGRAL_HIGH = 1e15  # integers below print as such; above, repr may use exponents


def prometheus_body(result: Result) -> bytes:
    """The success body of Prometheus' HTTP API for ``result``, as the gateway sends it."""
    rows = _rows(result)
    if rows is None:
        return orjson.dumps({"status": "success", "data": result.to_prometheus()})
    pieces = [b'{"status":"success","data":{"resultType":"', result.result_type.encode()]
    pieces.append(b'","result":[')
    for n, (head, points) in enumerate(rows):
        pieces += (b"," if n else b"", head, b',"values":[')
        pieces += points
        pieces.append(b"]}")
    pieces.append(b"]}}")
    return b"".join(pieces)


def _rows(result: Result) -> list[Row] | None:
    """The series of the result, or None where the small shapes are simpler left to
    orjson."""
    value = result.value
    if isinstance(value, Matrix):
        rows = _matrix_rows(value)
    elif isinstance(value, Vector) and not result.instant:
        rows = _range_rows(value, result.steps_ms)
    elif isinstance(value, Scalar) and not result.instant:
        at = _time_texts(result.steps_ms)
        rows = [(b'{"metric":{}', _points(_joints(at), at[0], value_texts(value.values)))]
    else:
        return None
    return rows


Row = tuple[bytes, list[bytes]]  # (b'{"metric":{...}', the pieces of its points)


def _metric(labels: dict[str, str]) -> bytes:
    return b'{"metric":' + orjson.dumps(sorted_labels(labels))


def _by_labels(item: tuple[tuple[tuple[str, str], ...], Row]) -> tuple[tuple[str, str], ...]:
    return item[0]


def _sorted_rows(keyed: list[tuple[tuple[tuple[str, str], ...], Row]]) -> list[Row]:
    keyed.sort(key=_by_labels)
    return [row for _, row in keyed]


def _range_rows(value: Vector, steps_ms: Ints) -> list[Row]:
    times = _time_texts(steps_ms)
    joints = np.array(_joints(times), dtype=object)
    rows = np.flatnonzero(value.present.any(axis=1))
    if len(rows) == 0:
        return []
    present = value.present[rows]
    texts = value_texts(value.values[rows][present])  # row by row, in step order
    counts = present.sum(axis=1)
    ends = np.cumsum(counts).tolist()
    full = (counts == present.shape[1]).tolist()
    all_joints: list[bytes] = joints.tolist()
    keyed = []
    start = 0
    for k, i in enumerate(rows.tolist()):
        if full[k]:
            at, first = all_joints, times[0]
        else:
            cols = np.flatnonzero(present[k])
            at, first = joints[cols].tolist(), times[int(cols[0])]
        labels = value.labels[i]
        points = _points(at, first, texts[start : ends[k]])
        keyed.append((label_key(labels), (_metric(labels), points)))
        start = ends[k]
    return _sorted_rows(keyed)


def _matrix_rows(value: Matrix) -> list[Row]:
    flat = value.flat
    keyed = []
    starts = flat.starts.tolist()
    for i, labels in enumerate(value.labels):
        lo, hi = starts[i], starts[i + 1]
        if hi == lo:
            continue
        at = _time_texts(flat.ts[lo:hi])
        points = _points(_joints(at), at[0], value_texts(flat.values[lo:hi]))
        keyed.append((label_key(labels), (_metric(labels), points)))
    return _sorted_rows(keyed)


def _joints(times: list[bytes]) -> list[bytes]:
    """What comes before each value but the first: ``"],[t,"``."""
    return [b'"],[' + t + b',"' for t in times]


def _points(joints: list[bytes], first_time: bytes, values: list[bytes]) -> list[bytes]:
    """The pieces of ``[t,"v"],[t,"v"]...``: ``joints`` of the points in turn with their
    values (the first point's joint is replaced by its opening)."""
    n = len(values)
    if n == 0:
        return []
    parts: list[bytes] = [b""] * (2 * n + 1)
    parts[0:-1:2] = joints
    parts[1::2] = values
    parts[0] = b"[" + first_time + b',"'
    parts[-1] = b'"]'
    return parts


def _time_texts(ms: Ints) -> list[bytes]:
    """JSON numbers of ``format_time``: seconds, a fraction only when there is one."""
    return _split(orjson.dumps([format_time(t) for t in ms.tolist()]))


def _split(dumped: bytes) -> list[bytes]:
    """The items of a dumped flat JSON array of numbers."""
    inner = dumped[1:-1]
    return inner.split(b",") if inner else []


def value_texts(values: Floats) -> list[bytes]:
    """``format_value`` of every value, as ASCII bytes, in bulk."""
    if len(values) == 0:
        return []
    magnitude = np.abs(values)
    finite = np.isfinite(values)
    whole = values == np.trunc(values)  # False for NaN and Inf
    integral = whole & (magnitude < _INTEGRAL_HIGH)
    integral &= (values != 0) | ~np.signbit(values)  # -0.0 prints as "-0"
    plain = finite & ~whole & (magnitude >= _PLAIN_LOW)  # non-integral: below 2**53
    if integral.all():
        return _split(orjson.dumps(values.astype(np.int64), option=_NUMPY))
    if plain.all():
        return _split(orjson.dumps(values, option=_NUMPY))
    out = np.empty(len(values), dtype=object)
    if integral.any():
        out[integral] = _split(orjson.dumps(values[integral].astype(np.int64), option=_NUMPY))
    if plain.any():
        out[plain] = _split(orjson.dumps(values[plain], option=_NUMPY))
    other = np.flatnonzero(~(integral | plain))
    out[other] = [format_value(v).encode() for v in values[other].tolist()]
    texts: list[bytes] = out.tolist()
    return texts


__all__ = ["prometheus_body", "value_texts"]
