"""Rules run over recorded samples, off-line: unit tests for rules (``vigil rules test``).

The samples go through the real evaluator (``SampleEvaluator.handle`` and its absence
deadlines) with a clock the replay sets to each sample's time; only the log is an
in-memory one that keeps JetStream's two promises the evaluator relies on (the same
event id is stored once; an append naming a stale subject sequence is a Conflict).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from services.alerts.handlers import EVALUATOR, SampleEvaluator
from services.alerts.watchdog import WatchdogRelay
from services.alerts.writer import AlertWriter
from shared import subjects
from shared.bus import EventBus, Recorded
from shared.consumer import Delivery
from shared.errors import Conflict
from shared.events import (
    AlertEscalated,
    AlertEvent,
    AlertFired,
    AlertResolved,
    Event,
    Sample,
    SamplesIngested,
)
from shared.ruleconfig import RuleConfig
from shared.streams import METRICS

ChangeKind = Literal["fired", "escalated", "resolved"]


class MemoryLog:
    """The ALERTS stream for a replay: per-subject sequences, dedup by event id."""

    def __init__(self, clock: Any):
        self._clock = clock
        self.records: list[Recorded] = []
        self.at: dict[int, float] = {}  # seq -> replay time of the append
        self._by_id: dict[str, int] = {}
        self._last: dict[str, int] = {}

    async def publish(
        self,
        subject: str,
        event: Event,
        expected_last_subject_seq: int | None = None,
        timeout: float | None = None,
    ) -> int:
        if event.id in self._by_id:
            return self._by_id[event.id]
        last = self._last.get(subject, 0)
        if expected_last_subject_seq is not None and expected_last_subject_seq != last:
            raise Conflict(f"{subject} changed concurrently; reload and retry")
        seq = len(self.records) + 1
        self.records.append(Recorded(event, seq, subject))
        self.at[seq] = self._clock()
        self._by_id[event.id] = seq
        self._last[subject] = seq
        return seq

    async def read_subject(self, subject: str) -> list[Recorded]:
        return [r for r in self.records if r.subject == subject]

    async def replay(self, stream: str, *_: Any, **__: Any) -> AsyncIterator[Recorded]:
        for record in list(self.records):
            yield record


@dataclass(frozen=True)
class Change:
    """One transition as the replay saw it."""

    at: float
    rule: str
    labels: dict[str, str]
    kind: ChangeKind
    severity: str
    value: float | None
    reason: str
    annotations: dict[str, str]


def change_of(event: AlertEvent, at: float) -> Change | None:
    if isinstance(event, AlertFired):
        kind: ChangeKind = "fired"
        value: float | None = event.value
        reason: str = event.reason
        notes = event.annotations
    elif isinstance(event, AlertEscalated):
        kind, value, reason, notes = "escalated", event.value, "threshold", event.annotations
    elif isinstance(event, AlertResolved):
        kind, value, reason, notes = "resolved", event.value, event.reason, {}
    else:
        return None
    return Change(at, event.rule, dict(event.labels), kind, event.severity, value, reason, notes)


class RuleReplay:
    """Feed batches at given times; read back the transitions in order."""

    def __init__(self, rules: Iterable[RuleConfig], start: float = 0.0):
        self.now = start
        self.log = MemoryLog(lambda: self.now)
        bus = cast(EventBus, self.log)
        self.writer = AlertWriter(lambda: bus)
        self.evaluator = SampleEvaluator(
            self.writer, rules, WatchdogRelay(lambda: bus), clock=lambda: self.now
        )
        self._seq = 0

    async def advance(self, to: float) -> None:
        """Let time pass until ``to``: each absence deadline on the way fires at its time."""
        absence = self.evaluator.engine.absence
        while (deadline := absence.next_deadline()) is not None and deadline <= to:
            self.now = max(self.now, deadline)
            await self.evaluator.fire_absences(self.now)
        self.now = max(self.now, to)

    async def batch(self, at: float, samples: Sequence[Sample], source: str = "rules-test") -> None:
        """One batch arriving at ``at`` (samples without a timestamp are stamped ``at``)."""
        await self.advance(at)
        self._seq += 1
        event = SamplesIngested(aggregate_id=source, samples=list(samples), received_at=at)
        delivery = Delivery(METRICS.name, subjects.samples(source), self._seq, 1, EVALUATOR.durable)
        await self.evaluator.handle(event, delivery)

    def changes(self) -> list[Change]:
        found = []
        for record in self.log.records:
            if isinstance(record.event, AlertEvent):
                change = change_of(record.event, self.log.at[record.seq])
                if change is not None:
                    found.append(change)
        return found
