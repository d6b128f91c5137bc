"""The SLO part of the metrics service: its two queries and the burn-rate evaluation."""

from __future__ import annotations

import logging
from typing import Any

from services.metrics.slo.burn import BurnEvaluator
from services.metrics.slo.maintenance import MaintenanceFollower
from services.metrics.slo.reader import SloReader
from services.metrics.slo.service import SloBook
from services.metrics.store import MetricsStore
from shared.config import VigilConfig
from shared.events import SamplesIngested
from shared.runtime import ServiceRuntime
from shared.slocommands import QUERY_SLA_REPORT, QUERY_SLO

log = logging.getLogger(__name__)


def add_slos(runtime: ServiceRuntime, store: MetricsStore, config: VigilConfig) -> SloBook:
    book = SloBook(config.slos, SloReader(store), config.maintenance)
    follower = MaintenanceFollower(config.maintenance, lambda: runtime.bus)

    async def refresh() -> None:
        """The API's maintenance windows as CONFIG has them now; on failure the last
        ones read are kept (and the next answer tries again)."""
        if not book.excludes_maintenance:
            return
        try:
            book.set_maintenance(await follower.windows())
        except Exception:
            log.exception("could not read the maintenance windows from CONFIG")

    async def query(body: dict[str, Any]) -> dict[str, Any]:
        await refresh()
        return await book.query(body)

    async def report(body: dict[str, Any]) -> dict[str, Any]:
        await refresh()
        return await book.report(body)

    runtime.respond(QUERY_SLO, query)
    runtime.respond(QUERY_SLA_REPORT, report)
    if any(slo.alerts for slo in config.slos):

        async def publish(subject: str, event: SamplesIngested) -> object:
            return await runtime.bus.publish(subject, event)

        evaluator = BurnEvaluator(book, publish, before=refresh)
        runtime.background(evaluator.run)
    return book
