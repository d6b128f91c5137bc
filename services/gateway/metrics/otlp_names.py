"""OpenTelemetry names to Prometheus names, as the OpenTelemetry specification's
"Prometheus and OpenMetrics Compatibility" prescribes; free of I/O.

Metric names keep ``[a-zA-Z0-9_:]``, label names ``[a-zA-Z0-9_]``: every other character
becomes ``_`` and runs of ``_`` become one, so ``http.server.request.duration`` is stored
as ``http_server_request_duration_seconds`` (unit ``s``, a histogram) and
``http.route`` as ``http_route``. The UCUM unit becomes a suffix (``By`` → ``_bytes``,
``1`` → ``_ratio`` on gauges, ``{request}`` → nothing, ``By/s`` → ``_bytes_per_second``),
then the type's own (``_total`` on counters).
"""

from __future__ import annotations

import base64
import json
import re
from decimal import Decimal
from typing import Any, Literal

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

Kind = Literal["gauge", "counter", "histogram", "summary"]

# the UCUM codes OpenTelemetry's semantic conventions use, spelled as Prometheus does
UNITS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "%": "percent",
}
PER_UNITS = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}

_NOT_IN_METRIC_NAME = re.compile(r"[^a-zA-Z0-9_:]+")
_NOT_IN_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]+")
_NOT_IN_UNIT = re.compile(r"[^a-zA-Z0-9]+")
_UNDERSCORES = re.compile(r"__+")
_ANNOTATION = re.compile(r"\{[^}]*\}")


def _sanitised(text: str, invalid: re.Pattern[str]) -> str:
    return _UNDERSCORES.sub("_", invalid.sub("_", text))


def unit_suffix(unit: str, kind: Kind) -> str:
    """The unit as a name suffix without its leading ``_``; empty when there is none."""
    unit = _ANNOTATION.sub("", unit).strip()
    if unit == "1":
        return "ratio" if kind == "gauge" else ""
    main, _, per = unit.partition("/")
    words = _NOT_IN_UNIT.sub("_", UNITS.get(main, main)).strip("_")
    per_word = _NOT_IN_UNIT.sub("_", PER_UNITS.get(per, per)).strip("_")
    if per_word:
        return f"{words}_per_{per_word}" if words else f"per_{per_word}"
    return words


def metric_name(name: str, unit: str, kind: Kind) -> str:
    """The Prometheus metric name (before ``_bucket``/``_sum``/``_count``); empty when
    nothing of ``name`` survives. The unit is added unless the name holds it already."""
    base = _sanitised(name, _NOT_IN_METRIC_NAME)
    if base.strip("_") == "":
        return ""
    if base[0].isdigit():
        base = "_" + base
    counter = kind == "counter"
    if counter and base.endswith("_total"):
        base = base.removesuffix("_total")
    suffix = unit_suffix(unit, kind)
    if suffix and f"_{suffix}_" not in f"_{base}_":
        base = f"{base}_{suffix}"
    return _UNDERSCORES.sub("_", f"{base}_total" if counter else base)


def label_name(key: str) -> str:
    """A label name for an attribute key; a leading digit gets ``key_`` before it."""
    name = _sanitised(key, _NOT_IN_LABEL_NAME)
    if name[:1].isdigit():
        name = "key_" + name
    return name


def float_text(value: float) -> str:
    """A bucket bound or quantile as Prometheus writes it: ``0.005``, ``1``, ``+Inf``."""
    if value == float("inf"):
        return "+Inf"
    if value == float("-inf"):
        return "-Inf"
    if value != value:
        return "NaN"
    return format(Decimal(repr(value)).normalize(), "f")


def _plain(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, which) if which else None


def attribute_text(value: AnyValue) -> str:
    """A non-string attribute as the attribute specification writes it: booleans as
    ``true``/``false``, arrays and maps as JSON, bytes in base64."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        return float_text(value.double_value)
    if which is None:
        return ""
    plain = _plain(value)
    if isinstance(plain, str):
        return plain
    return json.dumps(plain, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def labels_of(attributes: Any, prefix: str = "") -> dict[str, str]:
    """Attributes as labels. Keys that become the same label name have their values joined
    with ``;`` in the order of the original keys, as the specification asks."""
    by_name: dict[str, list[tuple[str, str]]] = {}
    for kv in attributes:
        name = label_name(prefix + kv.key)
        if name.strip("_"):
            by_name.setdefault(name, []).append((kv.key, attribute_text(kv.value)))
    return {
        name: ";".join(text for _, text in sorted(pairs)) if len(pairs) > 1 else pairs[0][1]
        for name, pairs in by_name.items()
    }
