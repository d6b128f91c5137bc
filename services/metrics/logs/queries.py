"""Request/reply log queries, answered by the metrics service from its log store."""

from __future__ import annotations

from typing import Any

from services.metrics.logs import reads
from services.metrics.logs.store import LogStore
from shared.commands import LogHistogram, SearchLogs, parse_command


class LogQueries:
    def __init__(self, store: LogStore):
        self.store = store

    async def search(self, body: dict[str, Any]) -> dict[str, Any]:
        return await reads.search(self.store, parse_command(SearchLogs, body))

    async def histogram(self, body: dict[str, Any]) -> dict[str, Any]:
        return await reads.histogram(self.store, parse_command(LogHistogram, body))
