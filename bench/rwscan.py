"""Decode-only cost of remote-write bodies: the compiled scanner, its pure-Python twin and
the per-sample reader it replaces (``decode_write_request``), in µs per sample.

The bodies are what Prometheus sends: ``--samples`` samples per request drawn from a
population of ``--series`` series (one sample per series and request, cycling through
the population), labels sorted, built with the product's encoder (``shared.promwire``).
Snappy decompression is left out: the same for all three. Also shown: ``decode_labels``
per series, the cost the gateway pays once for each new series.

    .venv/bin/python bench/rwscan.py
    .venv/bin/python bench/rwscan.py --series 100000 --samples 10000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.gateway.metrics import rwscan  # noqa: E402
from services.gateway.metrics.remote_write import decode_write_request  # noqa: E402
from shared.promwire import LabelCache, WriteRequestBuilder  # noqa: E402

START_MS = 1_700_000_000_000


def bodies(series: int, per_body: int, samples_per_series: int) -> list[bytes]:
    """Decompressed WriteRequests covering the population once."""
    cache = LabelCache(capacity=series + 1)
    out = []
    per_request_series = max(1, per_body // samples_per_series)
    for first in range(0, series, per_request_series):
        builder = WriteRequestBuilder(cache)
        for i in range(first, min(series, first + per_request_series)):
            labels = {
                "job": f"job-{i % 20}",
                "instance": f"10.0.{i // 250 % 256}.{i % 250}:9100",
                "mode": ("idle", "user", "system", "iowait")[i % 4],
                "cpu": str(i % 64),
            }
            for j in range(samples_per_series):
                builder.add(f"node_metric_{i % 50}_total", labels, i * 1.5 + j, START_MS + j)
        out.append(builder.build())
    return out


def per_sample_us(decode: Callable[[bytes], object], data: list[bytes], samples: int) -> float:
    """Best of several passes over all bodies, each pass at least ~0.3 s."""
    best = float("inf")
    for _ in range(5):
        passes = 0
        began = time.perf_counter()
        while True:
            for body in data:
                decode(body)
            passes += 1
            elapsed = time.perf_counter() - began
            if elapsed > 0.3:
                break
        best = min(best, elapsed / passes / samples * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=2_000, help="samples per body")
    args = parser.parse_args()

    print(f"compiled scanner built: {rwscan.COMPILED}")
    for per_series in (1, 10):
        data = bodies(args.series, args.samples, per_series)
        samples = sum(len(rwscan.scan_python(body)[1]) for body in data)
        size = sum(map(len, data)) / len(data)
        print(
            f"\n{len(data)} bodies of {samples // len(data)} samples, {per_series} per series, "
            f"{size / 1024:.0f} KiB each decompressed ({samples} samples in all)"
        )
        rows: list[tuple[str, Callable[[bytes], object]]] = []
        if rwscan.scan_compiled is not None:
            rows.append(("scan, compiled", rwscan.scan_compiled))
        rows.append(("scan, pure Python", rwscan.scan_python))
        rows.append(("decode_write_request", decode_write_request))
        figures = {name: per_sample_us(fn, data, samples) for name, fn in rows}
        reference = figures["decode_write_request"]
        for name, us in figures.items():
            print(f"  {name:<22} {us:8.3f} µs/sample   {reference / us:6.1f}x the reader")

    keys = [key for body in bodies(args.series, args.samples, 1) for key in rwscan.scan(body)[0]]
    began = time.perf_counter()
    for key in keys:
        rwscan.decode_labels(key)
    spent = time.perf_counter() - began
    print(f"\ndecode_labels: {spent / len(keys) * 1e6:.2f} µs per new series (5 labels)")


if __name__ == "__main__":
    main()
