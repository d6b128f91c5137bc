"""Properties of suppression over random histories of fires, resolves, acknowledgements,
escalations, silences, inhibiting alerts, flapping and time passing.

The real writer and suppressor run over an in-memory log (the same append contract as
JetStream: expected subject sequence, duplicate ids stored once), so Hypothesis can try
thousands of histories. For every event appended:

- its ``suppressed_by`` is exactly what is true at that moment: the silences active on
  its host, the open HostDown alerts of its host, and flapping (never stale);
- a suppressed event pages nobody;
- an event that pages because suppression ended follows a suppressed one, so one end
  of suppression never pages twice;

and at the end, once the timer has run, every open alert's reasons are the true ones,
and a suppressor rebuilt from the log has the live one's state.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.alerts.domain import Alert
from services.alerts.suppression import Suppressor
from services.alerts.writer import AlertWriter
from shared.bus import Recorded
from shared.errors import Conflict
from shared.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertEvent,
    AlertFired,
    AlertResolved,
    AlertSuppressionChanged,
    Event,
    derived_id,
)
from shared.suppression import muted, notified_as, pages_now
from shared.suppressionconfig import FlappingConfig, InhibitRuleConfig
from tests.alerts.suppression_rig import T0, Clock, Span, SpanBook

HOSTS = ("a", "b", "c")
INHIBIT = InhibitRuleConfig(
    source_matchers=['alertname="HostDown"'],
    target_matchers=['alertname="HighCPU"'],
    equal=["host"],
)
FLAPPING = FlappingConfig.model_validate({"changes": 3, "window": "10m"})


@dataclass
class MemoryLog:
    """The ALERTS stream in memory, with JetStream's append rules; it also records, at
    each append, what is true about that event's suppression."""

    truth: Callable[[AlertEvent], dict[str, set[str]]]
    records: list[Recorded] = field(default_factory=list)
    ids: dict[str, int] = field(default_factory=dict)
    checked: list[tuple[AlertEvent, dict[str, set[str]]]] = field(default_factory=list)

    async def publish(
        self, subject: str, event: Event, expected_last_subject_seq: int | None = None
    ) -> int:
        if event.id in self.ids:
            return self.ids[event.id]
        last = max((r.seq for r in self.records if r.subject == subject), default=0)
        if expected_last_subject_seq is not None and expected_last_subject_seq != last:
            raise Conflict(f"{subject} changed")
        assert isinstance(event, AlertEvent)
        self.checked.append((event, self.truth(event)))
        seq = len(self.records) + 1
        self.records.append(Recorded(event, seq, subject))
        self.ids[event.id] = seq
        return seq

    async def read_subject(self, subject: str) -> list[Recorded]:
        return [r for r in self.records if r.subject == subject]

    async def replay(self, stream: str) -> AsyncIterator[Recorded]:
        for record in list(self.records):
            yield record


class World:
    """The history being played: the log, the clock, the silences, the alerts service."""

    def __init__(self) -> None:
        self.clock = Clock(T0)
        self.book = SpanBook()
        self.log = MemoryLog(self.truth)
        self.writer, self.suppressor = self.service()
        self.episodes: dict[str, int] = defaultdict(int)
        self.spans = 0

    def service(self) -> tuple[AlertWriter, Suppressor]:
        writer = AlertWriter(lambda: self.log, self.clock.now)  # type: ignore[arg-type,return-value]
        suppressor = Suppressor(writer, [self.book], [INHIBIT], FLAPPING, clock=self.clock.now)
        writer.stamper = suppressor
        return writer, suppressor

    # --- what is true -------------------------------------------------------------

    def truth(self, event: AlertEvent) -> dict[str, set[str]]:
        """Silences and inhibiting alerts on the event's series at its time."""
        host = event.labels["host"]
        silences = {r.id for r in self.book.active({"host": host}, event.time)}
        inhibitors: set[str] = set()
        if event.rule == "HighCPU":
            inhibitors = {
                a.alert_id
                for a in self.open_alerts()
                if a.rule == "HostDown" and a.labels["host"] == host
            }
        return {"silence": silences, "inhibition": inhibitors}

    def open_alerts(self) -> list[Alert]:
        return list(self.writer.book.open.values())

    # --- moves ----------------------------------------------------------------------

    async def alert(self, rule: str, host: str, move: str) -> None:
        fp = f"{rule}/{host}"
        alert = self.writer.book.open.get(fp)
        labels = {"host": host}
        common: dict[str, Any] = {"rule": rule, "fingerprint": fp, "metric": rule, "labels": labels}
        event: AlertEvent | None = None
        if move == "fire" and alert is None:
            self.episodes[fp] += 1
            alert_id = derived_id("alert", fp, self.episodes[fp])
            event = AlertFired(
                id=derived_id(alert_id, 1),
                aggregate_id=alert_id,
                severity="warning",
                value=1.0,
                threshold=1.0,
                **common,
            )
        elif alert is not None:
            version = alert.version + 1
            envelope: dict[str, Any] = {
                "id": derived_id(alert.alert_id, version),
                "aggregate_id": alert.alert_id,
                "version": version,
                **common,
            }
            if move == "escalate" and alert.severity == "warning":
                event = AlertEscalated(
                    **envelope,
                    severity="critical",
                    previous_severity="warning",
                    value=2.0,
                    threshold=2.0,
                )
            elif move == "ack" and alert.status == "firing":
                event = AlertAcknowledged(**envelope, severity=alert.severity, by="ann")
            elif move == "resolve":
                event = AlertResolved(**envelope, severity=alert.severity)
        if event is not None:
            move_event: AlertEvent = event
            async with self.writer.lock:
                await self.writer.execute(event.aggregate_id, lambda _: [move_event])

    async def silence(self, host: str, minutes: int) -> None:
        self.spans += 1
        now = self.clock.now()
        await self.book.add(
            Span(f"s-{self.spans}", {"host": host}, now, now + timedelta(minutes=minutes))
        )

    async def unsilence(self, index: int) -> None:
        if self.book.spans:
            await self.book.remove(sorted(self.book.spans)[index % len(self.book.spans)])

    async def reconcile(self) -> None:
        async with self.writer.lock:
            await self.suppressor.reconcile()


moves = st.one_of(
    st.tuples(
        st.just("alert"),
        st.sampled_from(("HighCPU", "HighCPU", "HostDown")),
        st.sampled_from(HOSTS),
        st.sampled_from(("fire", "fire", "resolve", "escalate", "ack")),
    ),
    st.tuples(st.just("silence"), st.sampled_from(HOSTS), st.integers(1, 30)),
    st.tuples(st.just("unsilence"), st.integers(0, 10)),
    st.tuples(st.just("advance"), st.integers(1, 900)),
    st.tuples(st.just("reconcile")),
)


async def play(history: list[tuple[Any, ...]]) -> World:
    world = World()
    for move in history:
        kind = move[0]
        if kind == "alert":
            await world.alert(*move[1:])
        elif kind == "silence":
            await world.silence(*move[1:])
        elif kind == "unsilence":
            await world.unsilence(move[1])
        elif kind == "advance":
            world.clock.advance(move[1])
        else:
            await world.reconcile()
    await world.reconcile()
    return world


def reasons(event: AlertEvent, kind: str) -> set[str]:
    return {r.id for r in event.suppressed_by if r.kind == kind}


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(moves, max_size=40))
def test_suppression_is_always_the_truth_and_never_pages_twice(
    history: list[tuple[Any, ...]],
) -> None:
    world = asyncio.run(play(history))
    last_stamp: dict[str, list[Any]] = {}
    for event, truth in world.log.checked:
        # stamped with exactly what is true now (flapping aside, checked by its own tests)
        assert reasons(event, "silence") == truth["silence"], event
        assert reasons(event, "inhibition") == truth["inhibition"], event
        # a suppressed event pages nobody
        if truth["silence"] or truth["inhibition"]:
            assert muted(event) and notified_as(event) is None
        # paging because suppression ended follows a suppressed event of that alert
        if pages_now(event):
            assert last_stamp.get(event.aggregate_id), event
        if isinstance(event, AlertSuppressionChanged):
            assert event.previous == last_stamp.get(event.aggregate_id, [])
            assert set(event.previous) != set(event.suppressed_by)
        last_stamp[event.aggregate_id] = list(event.suppressed_by)
    # once the timer has run, every open alert carries the true reasons
    now = world.clock.now()
    down = {a.labels["host"]: a.alert_id for a in world.open_alerts() if a.rule == "HostDown"}
    for alert in world.open_alerts():
        stamp = last_stamp[alert.alert_id]
        host = alert.labels["host"]
        assert {r.id for r in stamp if r.kind == "silence"} == {
            r.id for r in world.book.active({"host": host}, now)
        }
        inhibitor = {down[host]} if alert.rule == "HighCPU" and host in down else set()
        assert {r.id for r in stamp if r.kind == "inhibition"} == inhibitor
    # and the state rebuilt from the log is the live state
    rebuilt = World()
    rebuilt.log, rebuilt.book, rebuilt.clock = world.log, world.book, world.clock
    rebuilt.writer, rebuilt.suppressor = rebuilt.service()
    asyncio.run(rebuilt.writer.load())
    assert rebuilt.suppressor.snapshot() == world.suppressor.snapshot()


def test_the_truth_is_not_trivially_empty() -> None:
    """The property sees suppressed events and pages after suppression (not a vacuous pass)."""
    history: list[tuple[Any, ...]] = [
        ("silence", "a", 10),
        ("alert", "HighCPU", "a", "fire"),
        ("alert", "HostDown", "b", "fire"),
        ("alert", "HighCPU", "b", "fire"),
        ("advance", 601),
        ("reconcile",),
        ("alert", "HostDown", "b", "resolve"),
    ]
    world = asyncio.run(play(history))
    checked = [(e.type, [r.kind for r in e.suppressed_by]) for e, _ in world.log.checked]
    assert checked == [
        ("AlertFired", ["silence"]),
        ("AlertFired", []),
        ("AlertFired", ["inhibition"]),
        ("AlertSuppressionChanged", []),
        ("AlertResolved", []),
        ("AlertSuppressionChanged", []),
    ]
    assert sum(pages_now(e) for e, _ in world.log.checked) == 2
