"""Burn-rate evaluation: every interval, each SLO's burn rates over the alert windows go
to METRICS as samples, with a 0/1 sample per urgency that is 1 while both windows of one
of its pairs burn fast enough. The generated rules (``shared.sloconfig.burn_rules``)
turn those into alerts, so they are routed, silenced and paged like any other."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from services.metrics.slo.service import SloBook
from shared import subjects
from shared.events import Sample, SamplesIngested, derived_id
from shared.sloconfig import BUDGET_METRIC, BURN_ALERT_METRIC, BURN_RATE_METRIC

log = logging.getLogger(__name__)

SOURCE = "slo"
SUBJECT = subjects.samples(SOURCE)
INTERVAL_S = 30.0


def burn_samples(
    book_answer: dict[str, dict[str, object]], book: SloBook, now: float
) -> list[Sample]:
    samples: list[Sample] = []
    for name, found in book_answer.items():
        slo = book.slos[name]
        base = {"slo": name, **({"service": slo.service} if slo.service else {})}
        rates = found["rates"]
        assert isinstance(rates, dict)
        for window, rate in rates.items():
            samples.append(
                Sample(
                    name=BURN_RATE_METRIC,
                    value=float(rate),
                    timestamp=now,
                    labels={**base, "window": window},
                )
            )
        alerts = found["alerts"]
        assert isinstance(alerts, dict)
        for urgency, firing in alerts.items():
            samples.append(
                Sample(
                    name=BURN_ALERT_METRIC,
                    value=1.0 if firing else 0.0,
                    timestamp=now,
                    labels={**base, "urgency": urgency},
                )
            )
        remaining = found["budget_remaining"]
        if isinstance(remaining, float):
            samples.append(
                Sample(name=BUDGET_METRIC, value=remaining, timestamp=now, labels=dict(base))
            )
    return samples


class BurnEvaluator:
    def __init__(
        self,
        book: SloBook,
        publish: Callable[[str, SamplesIngested], Awaitable[object]],
        clock: Callable[[], float] = time.time,
        interval_s: float = INTERVAL_S,
        before: Callable[[], Awaitable[None]] | None = None,
    ):
        self.before = before
        self.book = book
        self.publish = publish
        self.clock = clock
        self.interval_s = interval_s

    async def tick(self) -> list[Sample]:
        """One evaluation at the clock's time: the samples it sent."""
        if self.before is not None:
            await self.before()
        now = self.clock()
        samples = burn_samples(await self.book.burn(now), self.book, now)
        if samples:
            # one id per evaluation time: a retried publish is stored once
            event = SamplesIngested(
                id=derived_id(SOURCE, f"{now:.3f}"),
                aggregate_id=SOURCE,
                samples=samples,
                received_at=now,
            )
            await self.publish(SUBJECT, event)
        return samples

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("SLO burn-rate evaluation failed")
            await asyncio.sleep(self.interval_s)
