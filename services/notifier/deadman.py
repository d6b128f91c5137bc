"""The dead-man's switch: an outside URL pinged after each watchdog trip, at most once
per interval. The watchdog sample has then been ingested, evaluated and handed to the
notifier, so the pings stop when any stage of the paging path stops."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from shared import outbound, subjects
from shared.config import DeadmanConfig
from shared.consumer import ConsumerSpec, Delivery
from shared.events import Event, WatchdogEvaluated
from shared.faults import FaultBoard
from shared.outbound import describe_error, status_text
from shared.streams import WATCHDOG

log = logging.getLogger(__name__)

DEADMAN_FAULT = "deadman"

WATCHDOG_CONSUMER = ConsumerSpec(
    durable="notifier-watchdog",
    stream=WATCHDOG,
    filter_subject=f"{subjects.WATCHDOG}.>",
    ordered=False,
    max_attempts=1,
)


class DeadmanSwitch:
    def __init__(
        self,
        config: DeadmanConfig | None,
        session: Callable[[], aiohttp.ClientSession],
        faults: FaultBoard,
        clock: Callable[[], float] = time.time,
    ):
        self.config = config
        self._session = session
        self.faults = faults
        self.clock = clock
        self.delivered: float | None = None  # send time of the newest watchdog handled
        self.pinged_at: float | None = None

    def status(self) -> dict[str, Any]:
        return {"watchdog_delivered": self.delivered, "deadman_pinged_at": self.pinged_at}

    async def on_watchdog(self, event: Event, delivery: Delivery) -> None:
        """Ping when due. A stale watchdog (the path was stalled, or this is a replay) is
        not a sign of life now, and a failed ping is not retried: the next trip pings."""
        if not isinstance(event, WatchdogEvaluated):
            return
        now = self.clock()
        self.delivered = max(self.delivered or 0.0, event.sent_at)
        if self.config is None or now - event.sent_at > self.config.interval_s:
            return
        if self.pinged_at is not None and now - self.pinged_at < self.config.interval_s:
            return
        await self.ping(now)

    async def ping(self, now: float) -> None:
        assert self.config is not None
        try:
            async with outbound.request(
                self._session(),
                self.config.method,
                self.config.url,
                timeout_s=self.config.timeout_s,
            ) as response:
                failure = None if response.status < 300 else status_text(response.status)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            failure = describe_error(exc, self.config.timeout_s)
        if failure is not None:
            reason = f"dead-man's switch ping failed: {failure}"[:300]
            self.faults.report(DEADMAN_FAULT, reason)
            log.warning("dead-man's switch ping failed", extra={"error": reason})
            return
        self.pinged_at = now
        self.faults.clear(DEADMAN_FAULT)
