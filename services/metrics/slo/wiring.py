"""The SLO part of the metrics service: its two queries and the burn-rate evaluation."""

from __future__ import annotations

from services.metrics.slo.burn import BurnEvaluator
from services.metrics.slo.reader import SloReader
from services.metrics.slo.service import SloBook
from services.metrics.store import MetricsStore
from shared.config import VigilConfig
from shared.events import SamplesIngested
from shared.runtime import ServiceRuntime
from shared.slocommands import QUERY_SLA_REPORT, QUERY_SLO


def add_slos(runtime: ServiceRuntime, store: MetricsStore, config: VigilConfig) -> SloBook:
    book = SloBook(config.slos, SloReader(store), config.maintenance)
    runtime.respond(QUERY_SLO, book.query)
    runtime.respond(QUERY_SLA_REPORT, book.report)
    if any(slo.alerts for slo in config.slos):

        async def publish(subject: str, event: SamplesIngested) -> object:
            return await runtime.bus.publish(subject, event)

        runtime.background(BurnEvaluator(book, publish).run)
    return book
