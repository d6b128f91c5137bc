"""One set of series, loaded both into the in-memory source and into ``promtool``'s
``input_series``, so the engine and Prometheus evaluate the very same samples."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from tests.metrics.promql.memory_source import MemorySource

INTERVAL_MS = 60_000
STALE = "stale"
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]

Point = float | str | None


def _counter(start: float, step: float, count: int) -> list[Point]:
    return [start + step * i for i in range(count)]


SERIES: list[tuple[str, dict[str, str], Sequence[Point]]] = [
    (
        "http_requests_total",
        {"job": "api", "instance": "a", "code": "200"},
        # reset at minute 15
        _counter(0, 10, 15) + _counter(5, 10, 15),
    ),
    ("http_requests_total", {"job": "api", "instance": "b", "code": "200"}, _counter(0, 3, 30)),
    ("http_requests_total", {"job": "api", "instance": "a", "code": "500"}, _counter(0, 1, 30)),
    (
        "http_requests_total",
        {"job": "web", "instance": "c", "code": "200"},
        _counter(100, 7, 10) + [None] * 5 + _counter(170, 7, 15),
    ),
    (
        "cpu_usage",
        {"host": "h1", "mode": "user"},
        [1, 4, 2, 8, 5, 7, 3, 6, 9, 0, 2.5, 4.5, 1.5, 8, 8, 3, 7, 2, 6, 4] * 1 + [5] * 10,
    ),
    (
        "cpu_usage",
        {"host": "h2", "mode": "user"},
        [3, 3, 6, 2, 9, 1, 4, 4, 7, 5, 2, 6, 8, 1, 3, 9, 0, 5, 5, 2] + [4] * 10,
    ),
    # Never equal to another cpu_usage series: topk/bottomk order ties arbitrarily.
    ("cpu_usage", {"host": "h1", "mode": "system"}, [0.5 * i + 0.25 for i in range(30)]),
    ("host_info", {"host": "h1", "dc": "eu"}, [1.0] * 30),
    ("host_info", {"host": "h2", "dc": "us"}, [1.0] * 30),
    ("temperature", {"room": "x"}, [20, 21, 22, STALE, None, None, None, None, None, None] * 3),
    ("temperature", {"room": "y"}, [-4.5, -2, 0, 2, 4.5, -8, 16, 3.25, 1, 2] * 3),
]

_BUCKETS = {
    "0.1": [0, 2, 4, 6, 8, 10, 12, 14, 16, 18],
    "0.5": [0, 5, 10, 15, 20, 25, 30, 35, 40, 45],
    "1": [0, 8, 16, 24, 32, 40, 48, 56, 64, 72],
    "+Inf": [0, 10, 20, 30, 40, 50, 60, 70, 80, 90],
}
for le, values in _BUCKETS.items():
    points = [float(v) for v in values] * 3
    SERIES.append(("request_seconds_bucket", {"job": "api", "le": le}, points))
# A histogram whose counts are not monotonic in le (Prometheus forces them to be).
for job, buckets in (
    ("odd", {"1": 10.0, "2": 8.0, "4": 15.0, "+Inf": 20.0}),
    ("flat", {"0.25": 0.0, "0.5": 5.0, "1": 5.0, "+Inf": 5.0}),
):
    for le, v in buckets.items():
        constant = [v] * 30
        SERIES.append(("request_seconds_bucket", {"job": job, "le": le}, constant))


def build_source() -> MemorySource:
    source = MemorySource()
    for name, labels, points in SERIES:
        ts, vals = [], []
        for i, p in enumerate(points):
            if p is None:
                continue
            ts.append(i * INTERVAL_MS)
            vals.append(STALE_NAN if isinstance(p, str) else float(p))
        source.add({"__name__": name, **labels}, ts, vals)
    return source


def series_selector(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{inner}}}"


def promtool_values(points: Sequence[Point]) -> str:
    out = []
    for p in points:
        if p is None:
            out.append("_")
        elif isinstance(p, str):
            out.append("stale")
        else:
            out.append(repr(float(p)))
    return " ".join(out)
