"""Rules of the metrics store, free of I/O: sample times, retention, what a query keeps."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from shared.events import MAX_FUTURE_S, Sample

SampleRow = tuple[str, str, float, float]
"""(name, canonical labels JSON, timestamp, value): the shape inserted on the hot path."""


def timestamp_ms(sample: Sample, received_at: float) -> int:
    """A sample's time in Unix milliseconds (the store's precision); one without a
    timestamp was taken when its batch arrived."""
    ts = sample["timestamp"]
    return round((received_at if ts is None else ts) * 1000)


def retention_window(now: float, retention_s: float) -> tuple[float, float]:
    """The timestamps a stored sample may have now: others are deleted.

    Retention acts by arrival, bounded through the timestamps: the gateway accepts a
    sample stamped at most ``retention_s`` before and ``MAX_FUTURE_S`` after its arrival,
    so deleting what is stamped before ``now - retention_s`` removes every sample at most
    ``retention_s + MAX_FUTURE_S`` after it arrived (the store deletes by whole blocks,
    so up to a block later). Anything stamped later than
    ``now + MAX_FUTURE_S`` cannot have been accepted by that rule (it came another way, or
    before the rule): it goes at once rather than outlive retention.
    """
    return now - retention_s, now + MAX_FUTURE_S


@dataclass(frozen=True)
class SampleWindow:
    """The newest ``limit`` matching samples, returned oldest first."""

    rows: list[SampleRow]
    truncated: bool


def newest_window(newest_first: list[SampleRow], limit: int) -> SampleWindow:
    """``newest_first`` holds up to ``limit + 1`` rows; one extra means more were left out."""
    truncated = len(newest_first) > limit
    kept = newest_first[:limit]
    kept.reverse()
    return SampleWindow(kept, truncated)


def sample_public(row: SampleRow) -> dict[str, object]:
    name, labels, ts, value = row
    return {"name": name, "value": value, "timestamp": ts, "labels": orjson.loads(labels)}
