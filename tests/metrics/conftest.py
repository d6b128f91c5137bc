"""Helpers for metrics tests: waiting on a condition, and building sample batches."""

from __future__ import annotations

from shared.events import Sample, SamplesIngested


def batch(
    samples: list[Sample], received_at: float = 1_700_000_000.0, source: str = "api"
) -> SamplesIngested:
    return SamplesIngested(aggregate_id=source, samples=samples, received_at=received_at)


def series(name: str, count: int, start_ts: float, labels: dict[str, str]) -> list[Sample]:
    """``count`` samples one second apart with values 0, 1, 2, ..."""
    return [
        Sample(name=name, value=float(n), timestamp=start_ts + n, labels=labels)
        for n in range(count)
    ]
