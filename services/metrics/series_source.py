"""The PromQL engine's view of the store (``SeriesSource``) over DuckDB."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from services.metrics import reads
from services.metrics.promql.source import LabelMatcher, SeriesData, SeriesSource, Want
from services.metrics.series_index import NAME_LABEL
from services.metrics.store import MetricsStore


class DuckSeriesSource(SeriesSource):
    """Matchers are evaluated on the in-memory series index; only the matching series'
    points are read, from raw samples or from the coarsest rollup that fits."""

    def __init__(self, store: MetricsStore, clock: Callable[[], float] = time.time):
        self.store = store
        self.clock = clock

    async def select(
        self,
        matchers: Sequence[LabelMatcher],
        start_ms: int,
        end_ms: int,
        *,
        step_ms: int,
        range_ms: int,
        want: Want,
    ) -> list[SeriesData]:
        core = self.store.core
        matched = core.index.select(matchers, start_ms, end_ms)
        if not matched:
            return []
        # every series known: no need to filter by id
        ids = None if len(matched) == len(core.index) else sorted(info.id for info in matched)
        now_ms = int(self.clock() * 1000)
        resolution = reads.resolution_for_select(core, now_ms, start_ms, step_ms, range_ms)

        def fetch() -> dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
            if resolution is None:
                return reads.raw_arrays(core, ids, start_ms, end_ms)
            return reads.rollup_arrays(core, resolution, want.value, ids, start_ms, end_ms)

        per_series = await self.store.read(fetch)
        bucket_ms = 0 if resolution is None else resolution.bucket_ms
        return [
            SeriesData(core.index.get(series_id).with_name(), ts, values, bucket_ms)
            for series_id, (ts, values) in per_series.items()
            if len(ts)
        ]

    async def series(
        self, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[dict[str, str]]:
        matched = self.store.core.index.select(matchers, start_ms, end_ms)
        return [info.with_name() for info in sorted(matched, key=lambda i: i.id)]

    async def label_names(
        self, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[str]:
        names: set[str] = set()
        for info in self.store.core.index.select(matchers, start_ms, end_ms):
            names.add(NAME_LABEL)
            names.update(key for key, value in info.labels.items() if value != "")
        return sorted(names)

    async def label_values(
        self, name: str, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[str]:
        values = {
            info.label(name) for info in self.store.core.index.select(matchers, start_ms, end_ms)
        }
        values.discard("")
        return sorted(values)
