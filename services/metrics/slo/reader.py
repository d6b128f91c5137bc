"""An SLO's events read exactly from the store: raw samples while the store keeps them,
and for older stretches the 1 m rollups' exact parts (a counter's last value per minute,
a check's runs counted and summed per minute). Latency samples against a threshold need
each sample, so their figures reach back only as far as the raw samples do."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from services.metrics import reads
from services.metrics.layout import BY_NAME
from services.metrics.promql.source import Want
from services.metrics.query_api import PromFailure, matcher_groups
from services.metrics.slo.arithmetic import (
    Series,
    Timeline,
    counted_runs_timeline,
    counters_timeline,
    runs_timeline,
    samples_timeline,
)
from services.metrics.slo.blocks import BlockCache, cached_raw_arrays
from services.metrics.store import MetricsStore
from shared.errors import InvalidInput
from shared.sloconfig import Events

# a counter's first sample in a window needs the one before it: read this much earlier
BASELINE_MS = 3_600_000
ROLLUP = BY_NAME["1m"]


class SloReader:
    def __init__(
        self,
        store: MetricsStore,
        clock: Callable[[], float] = time.time,
        cache: BlockCache | None = None,
    ):
        self.store = store
        self.clock = clock
        self.cache = cache if cache is not None else BlockCache()

    async def timeline(self, events: Events, start_ms: int, end_ms: int) -> Timeline:
        if events.kind == "counters":
            good, total = await self._series(
                (events.good, events.total), start_ms - BASELINE_MS, end_ms, Want.LAST
            )
            return counters_timeline(good, total, bad=events.bad_counter)
        if events.kind == "runs":
            raw_from = self._raw_from(start_ms)
            older = Timeline.of(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
            if raw_from > start_ms:
                ups = await self._rollup(events.total, start_ms, raw_from, Want.SUM)
                counts = await self._rollup(events.total, start_ms, raw_from, Want.COUNT)
                older = counted_runs_timeline(ups, counts)
            newer = runs_timeline(await self._raw(events.total, max(start_ms, raw_from), end_ms))
            return joined(older, newer)
        assert events.threshold is not None
        raw_from = self._raw_from(start_ms)
        found = await self._raw(events.total, max(start_ms, raw_from), end_ms)
        return samples_timeline(found, events.threshold)

    def _raw_from(self, start_ms: int) -> int:
        now_ms = int(self.clock() * 1000)
        return max(start_ms, self.store.core.retention.oldest(None, now_ms))

    def _ids(self, selector: str, start_ms: int, end_ms: int) -> list[int]:
        try:
            groups = matcher_groups(selector)
        except PromFailure as exc:
            raise InvalidInput(exc.message, field="sli") from exc
        matched = self.store.core.index.select(groups[0], start_ms, end_ms)
        return sorted(info.id for info in matched)

    async def _raw(self, selector: str, start_ms: int, end_ms: int) -> list[Series]:
        return list((await self._raw_by_id(selector, start_ms, end_ms)).values())

    async def _raw_by_id(self, selector: str, start_ms: int, end_ms: int) -> dict[int, Series]:
        return await self._raw_of(self._ids(selector, start_ms, end_ms), start_ms, end_ms)

    async def _raw_of(self, ids: list[int], start_ms: int, end_ms: int) -> dict[int, Series]:
        if not ids or end_ms <= start_ms:
            return {}
        core = self.store.core
        cache = self.cache
        found = await self.store.read(
            lambda: cached_raw_arrays(core, cache, ids, start_ms, end_ms - 1)
        )
        return {i: found[i] for i in sorted(found) if len(found[i][0])}

    async def _rollup(self, selector: str, start_ms: int, end_ms: int, want: Want) -> list[Series]:
        ids = self._ids(selector, start_ms, end_ms)
        return list((await self._rollup_of(ids, start_ms, end_ms, want)).values())

    async def _rollup_of(
        self, ids: list[int], start_ms: int, end_ms: int, want: Want
    ) -> dict[int, Series]:
        if not ids or end_ms <= start_ms:
            return {}
        core = self.store.core
        found = await self.store.read(
            lambda: reads.rollup_arrays(core, ROLLUP, want.value, ids, start_ms, end_ms - 1)
        )
        return {i: found[i] for i in sorted(found) if len(found[i][0])}

    async def _series(
        self, selectors: Sequence[str], start_ms: int, end_ms: int, want: Want
    ) -> list[list[Series]]:
        """Per selector, per series, the rollup's points before the raw samples, then the
        samples. The selectors' series are read together: one pass over the blocks."""
        raw_from = self._raw_from(start_ms)
        wanted = [set(self._ids(selector, raw_from, end_ms)) for selector in selectors]
        newer = await self._raw_of(sorted(set().union(*wanted)), raw_from, end_ms)
        older: dict[int, Series] = {}
        if raw_from > start_ms:
            earlier = [set(self._ids(selector, start_ms, raw_from)) for selector in selectors]
            older = await self._rollup_of(sorted(set().union(*earlier)), start_ms, raw_from, want)
            wanted = [a | b for a, b in zip(wanted, earlier, strict=True)]
        found: list[list[Series]] = []
        for ids in wanted:
            joined_series: list[Series] = []
            for series_id in sorted(ids & (set(older) | set(newer))):
                parts = [p for p in (older.get(series_id), newer.get(series_id)) if p is not None]
                joined_series.append(
                    (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
                    if len(parts) > 1
                    else parts[0]
                )
            found.append(joined_series)
        return found


def joined(older: Timeline, newer: Timeline) -> Timeline:
    """Two timelines of neighbouring stretches as one."""
    if len(older.ts) == 0:
        return newer
    return Timeline.of(
        np.concatenate([older.ts, newer.ts]),
        np.concatenate([np.diff(older.good_sum), np.diff(newer.good_sum)]),
        np.concatenate([np.diff(older.total_sum), np.diff(newer.total_sum)]),
    )
