"""Whether the metrics store answers, told in heartbeats like the SQL services' probe
(``database: {ok, detail}``), so health names a store that stopped answering; with how
many series and blocks it holds, so a compaction that stopped shows."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from services.metrics.store import MetricsStore
from shared.heartbeat import DB_PROBE_TIMEOUT_S


class StoreProbe:
    def __init__(self, store: MetricsStore):
        self.store = store
        self.ok: bool | None = None
        self.detail = "not checked yet"

    async def check(self) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(DB_PROBE_TIMEOUT_S):
                await self.store.ping()
        except TimeoutError:
            self.ok, self.detail = False, f"no answer within {DB_PROBE_TIMEOUT_S:g} s"
        except Exception as exc:  # what DuckDB says, first line only
            self.ok, self.detail = False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        else:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.ok, self.detail = True, f"answered in {elapsed_ms:.1f} ms"

    async def watch(self, interval_s: float) -> None:
        while True:
            await self.check()
            await asyncio.sleep(interval_s)

    def report(self) -> dict[str, Any]:
        if self.ok is None:
            return {}
        core = self.store.core
        tables = core.tables()
        return {
            "database": {"ok": self.ok, "detail": self.detail},
            "metrics_store": {
                "series": len(core.index),
                "hot_blocks": len(tables.hot),
                "compacted_blocks": len(tables.raw),
            },
        }
