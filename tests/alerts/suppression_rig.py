"""The alerts service with a clock the test moves and a small suppression book of its own.

``SpanBook`` is a stand-in for the silence and maintenance books: spans of time over
label equalities, each with an id, that the suppressor asks through the same
``SuppressionSource`` interface.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.alerts.app import AlertsService, attach
from shared import subjects
from shared.bus import EventBus
from shared.config import VigilConfig
from shared.events import AlertEvent, Sample, SamplesIngested, SuppressionKind, SuppressionRef
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.waiting import eventually

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


@dataclass
class Clock:
    at: datetime = T0

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@dataclass(frozen=True)
class Span:
    id: str
    equal: dict[str, str]
    starts: datetime
    ends: datetime
    comment: str = ""


async def _unwatched() -> None:
    return None


@dataclass
class SpanBook:
    kind: SuppressionKind = "silence"
    spans: dict[str, Span] = field(default_factory=dict)
    on_change: Callable[[], Awaitable[None]] = _unwatched

    def active(self, labels: Mapping[str, str], now: datetime) -> list[SuppressionRef]:
        return [
            SuppressionRef(kind=self.kind, id=s.id, detail=s.comment, until=s.ends)
            for s in self.spans.values()
            if s.starts <= now < s.ends and all(labels.get(k) == v for k, v in s.equal.items())
        ]

    def next_change(self, now: datetime) -> datetime | None:
        edges = [t for s in self.spans.values() for t in (s.starts, s.ends) if t > now]
        return min(edges, default=None)

    async def add(self, span: Span) -> None:
        self.spans[span.id] = span
        await self.on_change()

    async def remove(self, span_id: str) -> None:
        self.spans.pop(span_id, None)
        await self.on_change()


@dataclass
class Rig:
    bus: EventBus
    settings: Settings
    start_service: RuntimeFactory
    clock: Clock = field(default_factory=Clock)
    book: SpanBook = field(default_factory=SpanBook)
    started: list[AlertsService] = field(default_factory=list)
    runtimes: list[ServiceRuntime] = field(default_factory=list)

    async def start(self, config: VigilConfig, *books: SpanBook) -> AlertsService:
        runtime = ServiceRuntime("alerts", self.settings)
        service = attach(runtime, config, clock=self.clock.now)
        for book in books or (self.book,):
            service.suppressor.add_source(book)
        await self.start_service(runtime)
        self.started.append(service)
        self.runtimes.append(runtime)
        return service

    async def stop_all(self) -> None:
        for runtime in self.runtimes:
            await runtime.stop()
        self.runtimes.clear()

    async def samples(self, *values: float, name: str = "cpu", **labels: str) -> None:
        series = labels or {"host": "web-1"}
        batch = SamplesIngested(
            aggregate_id="test",
            samples=[Sample(name=name, value=v, labels=series) for v in values],
            received_at=time.time(),
        )
        await self.bus.publish(subjects.samples("test"), batch)

    async def events(self) -> list[AlertEvent]:
        return [r.event async for r in self.bus.replay("ALERTS") if isinstance(r.event, AlertEvent)]

    async def until(self, count: int, what: str = "alert events") -> list[AlertEvent]:
        async def probe() -> list[AlertEvent]:
            found = await self.events()
            return found if len(found) >= count else []

        found: list[AlertEvent] = await eventually(probe, within_s=5.0, what=f"{count} {what}")
        return found

    async def move(self, seconds: float, service: AlertsService) -> None:
        """Move the clock and let the suppressor's timer see it at once."""
        self.clock.advance(seconds)
        service.suppressor.alarm.wake()


def kinds(events: list[AlertEvent]) -> list[tuple[str, list[str]]]:
    """Each event's type and the kinds of its reasons not to page."""
    return [(e.type, [r.kind for r in e.suppressed_by]) for e in events]
