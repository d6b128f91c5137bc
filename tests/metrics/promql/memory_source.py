"""An in-memory :class:`SeriesSource` holding raw samples, for the engine's tests and bench."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from services.metrics.promql.source import LabelMatcher, MatchOp, SeriesData, SeriesSource, Want


def _matches(labels: dict[str, str], m: LabelMatcher) -> bool:
    value = labels.get(m.name, "")
    if m.op == MatchOp.EQUAL:
        return value == m.value
    if m.op == MatchOp.NOT_EQUAL:
        return value != m.value
    hit = re.fullmatch(m.value, value, re.DOTALL) is not None
    return hit if m.op == MatchOp.RE else not hit


class MemorySource(SeriesSource):
    def __init__(self, resolution_ms: int = 0) -> None:
        """``resolution_ms`` > 0 marks the points as rollup buckets (as a store would)."""
        self.resolution_ms = resolution_ms
        self.data: list[tuple[dict[str, str], np.ndarray, np.ndarray]] = []
        self.calls: list[tuple[int, int, int, int, Want]] = []

    def add(
        self,
        labels: dict[str, str],
        ts: Sequence[int] | np.ndarray,
        values: Sequence[float] | np.ndarray,
    ) -> None:
        self.data.append(
            (dict(labels), np.asarray(ts, dtype=np.int64), np.asarray(values, dtype=np.float64))
        )

    def _matching(self, matchers: Sequence[LabelMatcher]) -> list[int]:
        return [
            i
            for i, (labels, _, _) in enumerate(self.data)
            if all(_matches(labels, m) for m in matchers)
        ]

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
        self.calls.append((start_ms, end_ms, step_ms, range_ms, want))
        out = []
        for i in self._matching(matchers):
            labels, ts, values = self.data[i]
            lo = np.searchsorted(ts, start_ms, "left")
            hi = np.searchsorted(ts, end_ms, "right")
            if hi > lo:
                out.append(SeriesData(dict(labels), ts[lo:hi], values[lo:hi], self.resolution_ms))
        return out

    async def series(
        self, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[dict[str, str]]:
        return [
            dict(s.labels)
            for s in await self.select(
                matchers, start_ms, end_ms, step_ms=0, range_ms=0, want=Want.LAST
            )
        ]

    async def label_names(
        self, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[str]:
        names = {k for s in await self.series(matchers, start_ms, end_ms) for k in s}
        return sorted(names)

    async def label_values(
        self, name: str, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[str]:
        found = {s[name] for s in await self.series(matchers, start_ms, end_ms) if name in s}
        return sorted(found)
