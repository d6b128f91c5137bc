"""Where samples live in the metrics file: time blocks, rollup resolutions, table names.

Every table holds one span of time, so retention drops whole tables (and DuckDB reuses
their space at the next checkpoint) instead of deleting rows one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class Resolution:
    """A rollup: one row per series and ``bucket_ms``, kept in tables of ``partition_ms``."""

    name: str
    bucket_ms: int
    partition_ms: int

    def bucket(self, ts_ms: int) -> int:
        return ts_ms - ts_ms % self.bucket_ms

    def partition(self, ts_ms: int) -> int:
        return ts_ms - ts_ms % self.partition_ms

    def table(self, partition_ms: int) -> str:
        return f"rollup_{self.name}_{partition_ms}"


ROLLUPS = (
    Resolution("1m", MINUTE_MS, DAY_MS),
    Resolution("5m", 5 * MINUTE_MS, 7 * DAY_MS),
    Resolution("1h", HOUR_MS, 28 * DAY_MS),
)
"""Finest first. Every partition is a whole number of hours, so one block's rollups
always land in one partition of each resolution."""

BY_NAME = {resolution.name: resolution for resolution in ROLLUPS}

ROLLUPS_AT_COMPACTION = (ROLLUPS[2],)
"""Stored when a block is compacted: 1 h rows cost little and serve long ranges at once."""
ROLLUPS_AT_EXPIRY = (ROLLUPS[0], ROLLUPS[1])
"""Stored when a block leaves raw retention; until then computed from its raw samples."""


def block_of(ts_ms: int, block_ms: int) -> int:
    return ts_ms - ts_ms % block_ms


def hot_table(block_ms: int) -> str:
    """Samples as they arrive, unsorted, for one block of time."""
    return f"hot_{block_ms}"


def raw_table(block_ms: int) -> str:
    """A compacted block: the same samples sorted by (series_id, ts)."""
    return f"raw_{block_ms}"


def parse_table(name: str) -> tuple[str, int] | None:
    """(kind, start) of a data table: kind is ``hot``, ``raw`` or a resolution name."""
    parts = name.split("_")
    if len(parts) == 2 and parts[0] in ("hot", "raw") and parts[1].lstrip("-").isdigit():
        return parts[0], int(parts[1])
    if (
        len(parts) == 3
        and parts[0] == "rollup"
        and parts[1] in BY_NAME
        and parts[2].lstrip("-").isdigit()
    ):
        return parts[1], int(parts[2])
    return None


def overlapping(starts: list[int], span_ms: int, start_ms: int, end_ms: int) -> list[int]:
    """The tables among ``starts`` (each ``span_ms`` long) that hold time in [start, end]."""
    return sorted(s for s in starts if s <= end_ms and s + span_ms > start_ms)
