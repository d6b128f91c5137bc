"""Sending audit events to the log without holding up the answer they describe.

The middleware hands each event over as the response completes; a background task
publishes them in order. While the log cannot take them the queue holds up to
``MAX_QUEUED`` events; beyond that the oldest waiting are dropped and counted (and logged),
so a broken log never takes the API down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from shared import subjects
from shared.bus import EventBus
from shared.events import AuditRecorded

log = logging.getLogger(__name__)

MAX_QUEUED = 10_000
RETRY_S = 1.0
PUBLISH_TIMEOUT_S = 2.0
FLUSH_AT_STOP_S = 1.0


class AuditRecorder:
    def __init__(self, bus_of: Callable[[], EventBus]):
        self.bus_of = bus_of
        self.queue: deque[AuditRecorded] = deque()
        self.dropped = 0
        self.published = 0
        self._waiting = asyncio.Event()

    def record(self, event: AuditRecorded) -> None:
        if len(self.queue) >= MAX_QUEUED:
            self.queue.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error(
                    "audit events dropped: the log does not take them",
                    extra={"dropped": self.dropped},
                )
        self.queue.append(event)
        self._waiting.set()

    async def publish_forever(self) -> None:
        try:
            await self._publish_forever()
        except asyncio.CancelledError:
            # stopping: what the last requests did still goes to the log, briefly
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flush(), FLUSH_AT_STOP_S)
            raise

    async def _flush(self) -> None:
        bus = self.bus_of()
        while self.queue:
            event = self.queue[0]
            await bus.publish(subjects.audit(event.outcome), event, timeout=PUBLISH_TIMEOUT_S)
            self.queue.popleft()
            self.published += 1

    async def _publish_forever(self) -> None:
        while True:
            if not self.queue:
                self._waiting.clear()
                await self._waiting.wait()
                continue
            event = self.queue[0]
            try:
                bus = self.bus_of()
                await bus.publish(subjects.audit(event.outcome), event, timeout=PUBLISH_TIMEOUT_S)
            except Exception as exc:
                log.warning("could not record an audit event; retrying", extra={"error": str(exc)})
                await asyncio.sleep(RETRY_S)
                continue
            if self.queue and self.queue[0] is event:
                self.queue.popleft()
            self.published += 1

    async def drained(self, within_s: float = 5.0) -> bool:
        """True once everything handed over so far is stored (tests, shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while self.queue:
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True
