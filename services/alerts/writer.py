"""The one path by which alert events reach the log: serialised, with optimistic concurrency.

The evaluator and the commands change the same in-memory alerts, so both take
``lock``. Every append names the subject sequence it decided on; a Conflict means
the log moved on, and the caller reloads the alert from the log and decides again.

Every event is stamped on its way out: its time from the service's clock, and (with a
``stamper``, the suppressor) the reasons it pages nobody, which the stamper then
learns from, as it learns from every event replayed at start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from services.alerts.domain import Alert, AlertBook, fold
from shared import subjects
from shared.bus import EventBus
from shared.events import AlertEvent, AlertFired, utcnow
from shared.streams import ALERTS

log = logging.getLogger(__name__)


class Stamper(Protocol):
    def reset(self) -> None: ...

    def stamp(self, event: AlertEvent) -> AlertEvent: ...

    def observe(self, event: AlertEvent) -> None: ...


class AlertWriter:
    def __init__(self, bus: Callable[[], EventBus], clock: Callable[[], datetime] = utcnow):
        self._bus = bus
        self.clock = clock
        self.book = AlertBook()
        self.lock = asyncio.Lock()
        self.stamper: Stamper | None = None

    def _record(self, event: AlertEvent, seq: int) -> None:
        """Into memory: notices on an alert that is over (flapping, settled) leave it over."""
        if isinstance(event, AlertFired) or self.book.get(event.aggregate_id) is not None:
            self.book.record(event, seq)

    async def load(self) -> None:
        """Rebuild open alerts from the whole ALERTS stream so they survive a restart."""
        async with self.lock:
            self.book = AlertBook()
            if self.stamper is not None:
                self.stamper.reset()
            count = 0
            async for recorded in self._bus().replay(ALERTS.name):
                if isinstance(recorded.event, AlertEvent):
                    self._record(recorded.event, recorded.seq)
                    if self.stamper is not None:
                        self.stamper.observe(recorded.event)
                    count += 1
            book = self.book
        log.info(
            "alerts loaded",
            extra={"events": count, "open_alerts": len(book.open), "position": book.position},
        )

    async def append(self, event: AlertEvent, expected_last_subject_seq: int) -> int:
        """Stamp, publish and apply; raises Conflict when the alert's subject moved on."""
        event = event.model_copy(update={"time": self.clock()})
        if self.stamper is not None:
            event = self.stamper.stamp(event)
        seq = await self._bus().publish(
            subjects.alert(event.aggregate_id), event, expected_last_subject_seq
        )
        self._record(event, seq)
        if self.stamper is not None:
            self.stamper.observe(event)
        log.info(
            "alert event recorded",
            extra={
                "event_id": event.id,
                "event_type": event.type,
                "alert_id": event.aggregate_id,
                "version": event.version,
                "stream_seq": seq,
                "correlation_id": event.correlation_id,
                "suppressed": len(event.suppressed_by),
            },
        )
        return seq

    async def reload(self, alert_id: str) -> Alert | None:
        """Replace what memory holds for one alert with what the log says."""
        history = await self._bus().read_subject(subjects.alert(alert_id))
        pairs = [(r.event, r.seq) for r in history if isinstance(r.event, AlertEvent)]
        log.info("alert reloaded", extra={"alert_id": alert_id, "events": len(pairs)})
        return self.book.replace(alert_id, pairs)

    async def current(self, alert_id: str) -> tuple[Alert | None, int]:
        """The alert and its last subject sequence: from memory when open, else from the log."""
        alert = self.book.get(alert_id)
        if alert is not None:
            return alert, self.book.last_seq[alert_id]
        history = await self._bus().read_subject(subjects.alert(alert_id))
        pairs = [(r.event, r.seq) for r in history if isinstance(r.event, AlertEvent)]
        if not pairs:
            return None, 0
        alert = fold(event for event, _ in pairs)
        if alert is not None and alert.is_open:
            # written by another process: take it into memory so the evaluator sees it too
            self.book.replace(alert_id, pairs)
        return alert, pairs[-1][1]
