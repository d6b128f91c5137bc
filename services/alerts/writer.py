"""The one path by which alert events reach the log: the shared aggregate loop
(``shared.aggregate``) with the in-memory alerts as its memory.

The evaluator, the commands and the suppressor change the same in-memory alerts, so
each holds ``lock`` around ``execute``. A decision is made on the alert as the book
holds it (an alert that is over, or another process's, is read from the log), appended
with the subject sequence it was made on, and on a Conflict made again on the alert as
the log has it now, which the book then holds too.

Every event is stamped on its way out: its time from the service's clock, and (with a
``stamper``, the suppressor) the reasons it pages nobody, which the stamper then
learns from, as it learns from every event replayed at start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from services.alerts.domain import Alert, AlertBook, apply
from shared import subjects
from shared.aggregate import AggregateLog, Outcome, Snapshot
from shared.bus import EventBus, Recorded
from shared.events import AlertEvent, AlertFired, Event, utcnow
from shared.streams import ALERTS

log = logging.getLogger(__name__)

AlertState = Alert | None


class Stamper(Protocol):
    def reset(self) -> None: ...

    def stamp(self, event: AlertEvent) -> AlertEvent: ...

    def observe(self, event: AlertEvent) -> None: ...


def _evolve(alert: AlertState, event: Event) -> AlertState:
    return apply(alert, event) if isinstance(event, AlertEvent) else alert


class AlertWriter:
    def __init__(self, bus: Callable[[], EventBus], clock: Callable[[], datetime] = utcnow):
        self._bus = bus
        self.clock = clock
        self.book = AlertBook()
        self.lock = asyncio.Lock()
        self.stamper: Stamper | None = None
        self.log: AggregateLog[AlertState] = AggregateLog(
            bus, subjects.alert, None, _evolve, noun="alert", memory=self, prepare=self._stamp
        )

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

    async def execute(
        self,
        alert_id: str,
        decide: Callable[[AlertState], Sequence[Event]],
        *,
        known: Snapshot[AlertState] | None = None,
    ) -> Outcome[AlertState]:
        """Append what ``decide`` says on the alert, deciding again on a Conflict; the
        caller holds ``lock``. The first decision is made on ``known`` when given (the
        evaluator's book, without a read), else on ``current``."""
        if known is None:
            known = await self.current(alert_id)
        return await self.log.execute(alert_id, decide, known=known)

    def held(self, alert_id: str) -> Snapshot[AlertState]:
        """The alert as the book holds it; none (a new alert, no events yet) when it does not."""
        held = self.recall(alert_id)
        return Snapshot(None) if held is None else held

    async def current(self, alert_id: str) -> Snapshot[AlertState]:
        """The alert and its last subject sequence: from memory when open, else from the log.

        An alert that is over stays out of the book: its old events would take the
        series' position and holds back to what they were then."""
        held = self.recall(alert_id)
        if held is not None:
            return held
        history = await self._bus().read_subject(subjects.alert(alert_id))
        snapshot = self.log.fold(history)
        if snapshot.state is not None and snapshot.state.is_open:
            # written by another process: take it into memory so the evaluator sees it too
            self.reloaded(alert_id, history, snapshot)
        return snapshot

    # --- the alert log's memory (shared.aggregate.Memory) --------------------------------

    def _stamp(self, event: Event) -> Event:
        if not isinstance(event, AlertEvent):
            return event
        event = event.model_copy(update={"time": self.clock()})
        return event if self.stamper is None else self.stamper.stamp(event)

    def recall(self, alert_id: str) -> Snapshot[AlertState] | None:
        alert = self.book.get(alert_id)
        return None if alert is None else Snapshot(alert, self.book.last_seq[alert_id])

    def reloaded(
        self, alert_id: str, history: Sequence[Recorded], snapshot: Snapshot[AlertState]
    ) -> None:
        """The book holds the alert as the log has it (after a Conflict: drops it if over)."""
        pairs = [(r.event, r.seq) for r in history if isinstance(r.event, AlertEvent)]
        self.book.replace(alert_id, pairs)
        log.info("alert reloaded", extra={"alert_id": alert_id, "events": len(pairs)})

    def appended(self, alert_id: str, recorded: Recorded, snapshot: Snapshot[AlertState]) -> None:
        event = recorded.event
        if not isinstance(event, AlertEvent):
            return
        self._record(event, recorded.seq)
        if self.stamper is not None:
            self.stamper.observe(event)
        if event.suppressed_by:
            log.info(
                "alert event suppressed",
                extra={
                    "event_id": event.id,
                    "alert_id": alert_id,
                    "suppressed_by": [ref.kind for ref in event.suppressed_by],
                },
            )
