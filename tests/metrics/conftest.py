"""Helpers for metrics tests: building sample batches, and a store in a temporary file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.metrics.settings import MetricsSettings
from services.metrics.store import MetricsStore
from shared.events import Sample, SamplesIngested

KEEP_ALL_S = 1e12  # raw retention that never deletes what the tests write


def batch(
    samples: list[Sample], received_at: float = 1_700_000_000.0, source: str = "api"
) -> SamplesIngested:
    return SamplesIngested(aggregate_id=source, samples=samples, received_at=received_at)


def series(
    name: str, count: int, start_ts: float, labels: dict[str, str], every_s: float = 1.0
) -> list[Sample]:
    """``count`` samples ``every_s`` apart with values 0, 1, 2, ..."""
    return [
        Sample(name=name, value=float(n), timestamp=start_ts + n * every_s, labels=labels)
        for n in range(count)
    ]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MetricsStore]:
    sample_store = MetricsStore(tmp_path / "metrics.duckdb", MetricsSettings(), KEEP_ALL_S)
    await sample_store.open()
    yield sample_store
    await sample_store.close()
