"""Request/reply queries on the samples store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.metrics import reads
from services.metrics.domain import sample_public
from services.metrics.store import MetricsStore
from shared.bus import EventBus
from shared.commands import QuerySamples, parse_command
from shared.streams import METRICS


class MetricsQueries:
    def __init__(self, store: MetricsStore, bus: Callable[[], EventBus]):
        self.store = store
        self.bus = bus

    async def samples(self, body: dict[str, Any]) -> dict[str, Any]:
        """Matching samples, newest ``limit`` of them, oldest first."""
        query = parse_command(QuerySamples, body)
        core = self.store.core
        window = await self.store.read(lambda: reads.query_samples(core, query))
        return {
            "samples": [sample_public(row) for row in window.rows],
            "truncated": window.truncated,
        }

    async def stats(self, body: dict[str, Any]) -> dict[str, int]:
        """How much is stored and how far the store lags the stream."""
        stored, last_seq = await self.store.position()
        info = await self.bus().js.stream_info(METRICS.name)
        stream_last_seq = int(info.state.last_seq)
        return {
            "stored_samples": stored,
            "last_seq": last_seq,
            "stream_last_seq": stream_last_seq,
            "backlog": max(0, stream_last_seq - last_seq),
        }
