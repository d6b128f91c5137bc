"""Whether the metrics store answers, told in heartbeats like the SQL services' probe
(``database: {ok, detail}``), so health names a store that stopped answering; with how
many series and blocks it holds, so a compaction that stopped shows."""

from __future__ import annotations

from typing import Any

from services.metrics.store import MetricsStore
from shared.heartbeat import StoreProbe


class MetricsStoreProbe(StoreProbe):
    def __init__(self, store: MetricsStore):
        super().__init__()
        self.store = store

    async def ping(self) -> None:
        await self.store.ping()

    def report(self) -> dict[str, Any]:
        if self.ok is None:
            return {}
        core = self.store.core
        tables = core.tables()
        return {
            **super().report(),
            "metrics_store": {
                "series": len(core.index),
                "hot_blocks": len(tables.hot),
                "compacted_blocks": len(tables.raw),
            },
        }
