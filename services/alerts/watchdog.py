"""The alerts service's part of the watchdog: each watchdog sample it evaluated goes on
to the notifier as ``WatchdogEvaluated``, which pings the dead-man's switch."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from shared import subjects
from shared.bus import EventBus
from shared.events import WATCHDOG_METRIC, SamplesIngested, WatchdogEvaluated, derived_id

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 1.0


class WatchdogRelay:
    def __init__(self, bus: Callable[[], EventBus]):
        self._bus = bus
        self.sent_at: float | None = None  # send time of the newest watchdog passed on

    async def passed(self, batch: SamplesIngested) -> None:
        """Best effort: a watchdog that cannot be recorded is a missed ping, which is the
        signal; it must not hold up the evaluation of real samples."""
        sent = next((s["value"] for s in batch.samples if s["name"] == WATCHDOG_METRIC), None)
        if sent is None:
            return
        event = WatchdogEvaluated(
            id=derived_id("watchdog-evaluated", batch.id),
            aggregate_id=batch.aggregate_id,
            sent_at=sent,
            evaluated_at=time.time(),
            correlation_id=batch.correlation_id,
            causation_id=batch.id,
        )
        try:
            await asyncio.wait_for(
                self._bus().publish(subjects.watchdog(batch.aggregate_id), event),
                PUBLISH_TIMEOUT_S,
            )
        except Exception as exc:
            log.warning("watchdog not recorded", extra={"error": repr(exc)[:200]})
            return
        self.sent_at = max(self.sent_at or 0.0, sent)

    def status(self) -> dict[str, Any]:
        return {"watchdog_evaluated": self.sent_at}
