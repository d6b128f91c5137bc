"""The escalations the notifier runs: a projection of the PAGING stream.

Folding is order-free and idempotent: a row keeps the furthest step scheduled and the
furthest step fired (a position is (round, step)), and a stop is final. So an event
applied twice, late, or out of order (the engine folds what it publishes at once; a
consumer of PAGING or a rebuild folds the same events again) leaves the same row, and
the stream alone rebuilds the table. The alerts table remembers which alerts were
resolved, so a late trigger cannot start paging for an alert that is over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.events import Event
from shared.events.paging import (
    EscalationEvent,
    EscalationStarted,
    EscalationStepFired,
    EscalationStepScheduled,
    EscalationStopped,
)

metadata = MetaData()

NOWHERE = (-1, -1)

escalations = Table(
    "notifier_escalations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("alert_id", String(200), nullable=False, index=True),
    Column("policy", String(100), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("cause", String(100), nullable=False, default=""),
    Column("fingerprint", String(200), nullable=False, default=""),
    Column("rule", String(200), nullable=False, default=""),
    Column("severity", String(20), nullable=False, default=""),
    Column("metric", String(200), nullable=False, default=""),
    Column("labels", JSON, nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False),  # running | stopped
    Column("reason", String(32), nullable=False, default=""),
    Column("scheduled_round", Integer, nullable=False, default=-1),
    Column("scheduled_step", Integer, nullable=False, default=-1),
    Column("due_at", DateTime(timezone=True), nullable=True),
    Column("fired_round", Integer, nullable=False, default=-1),
    Column("fired_step", Integer, nullable=False, default=-1),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

alert_states = Table(
    "notifier_escalation_alerts",
    metadata,
    Column("alert_id", String(200), primary_key=True),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("acknowledged_version", Integer, nullable=False, default=0),
)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True)
class Escalation:
    id: str
    alert_id: str
    policy: str
    generation: int
    cause: str
    fingerprint: str
    rule: str
    severity: str
    metric: str
    labels: dict[str, str]
    summary: str
    status: str
    reason: str
    scheduled: tuple[int, int]
    due_at: datetime | None
    fired: tuple[int, int]

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def pending(self) -> tuple[int, int] | None:
        """The step waiting for its deadline, if any."""
        if self.running and self.scheduled > self.fired and self.due_at is not None:
            return self.scheduled
        return None

    @classmethod
    def starting(
        cls, started: EscalationStarted, metric: str, scheduled: EscalationStepScheduled
    ) -> Escalation:
        """The row these two events make, before they are folded."""
        return cls(
            id=started.aggregate_id,
            alert_id=started.alert_id,
            policy=started.policy,
            generation=started.generation,
            cause=started.causation_id,
            fingerprint=started.fingerprint,
            rule=started.rule,
            severity=started.severity,
            metric=metric,
            labels=dict(started.labels),
            summary=started.summary,
            status="running",
            reason="",
            scheduled=(scheduled.round, scheduled.step),
            due_at=scheduled.due_at,
            fired=NOWHERE,
        )

    @classmethod
    def from_row(cls, row: Any) -> Escalation:
        return cls(
            id=row["id"],
            alert_id=row["alert_id"],
            policy=row["policy"],
            generation=int(row["generation"]),
            cause=row["cause"],
            fingerprint=row["fingerprint"],
            rule=row["rule"],
            severity=row["severity"],
            metric=row["metric"],
            labels=dict(row["labels"] or {}),
            summary=row["summary"],
            status=row["status"],
            reason=row["reason"],
            scheduled=(int(row["scheduled_round"]), int(row["scheduled_step"])),
            due_at=_aware(row["due_at"]),
            fired=(int(row["fired_round"]), int(row["fired_step"])),
        )


class EscalationStore:
    def __init__(self, engine: AsyncEngine):
        self.engine = engine

    async def create(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def reset(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)

    async def get(self, escalation_id: str) -> Escalation | None:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(escalations).where(escalations.c.id == escalation_id)))
                .mappings()
                .first()
            )
        return None if row is None else Escalation.from_row(row)

    async def for_alert(self, alert_id: str) -> list[Escalation]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(escalations)
                    .where(escalations.c.alert_id == alert_id)
                    .order_by(escalations.c.policy, escalations.c.generation)
                )
            ).mappings()
            return [Escalation.from_row(row) for row in rows]

    async def running(self) -> list[Escalation]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(select(escalations).where(escalations.c.status == "running"))
            ).mappings()
            return [Escalation.from_row(row) for row in rows]

    async def resolved(self, alert_id: str) -> bool:
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(alert_states.c.resolved_at).where(alert_states.c.alert_id == alert_id)
            )
        return value is not None

    async def acknowledged_version(self, alert_id: str) -> int:
        """The alert's version when it was last acknowledged; 0 if it never was."""
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(alert_states.c.acknowledged_version).where(
                    alert_states.c.alert_id == alert_id
                )
            )
        return int(value or 0)

    async def mark_acknowledged(self, alert_id: str, version: int) -> None:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(alert_states)
                .where(
                    alert_states.c.alert_id == alert_id,
                    alert_states.c.acknowledged_version < version,
                )
                .values(acknowledged_version=version)
            )
            if (
                result.rowcount == 0
                and await conn.scalar(
                    select(alert_states.c.alert_id).where(alert_states.c.alert_id == alert_id)
                )
                is None
            ):
                await conn.execute(
                    insert(alert_states).values(alert_id=alert_id, acknowledged_version=version)
                )

    async def mark_resolved(self, alert_id: str, at: datetime) -> None:
        async with self.engine.begin() as conn:
            await _mark_resolved(conn, alert_id, at)

    async def fold(self, event: Event) -> None:
        """Apply one PAGING event; any order, any number of times."""
        await self.fold_all([event])

    async def fold_all(self, events: list[Event], metric: str = "") -> None:
        """Apply PAGING events in one transaction; ``metric`` fills an empty metric of
        their escalations (it comes with the alert, not on EscalationStarted)."""
        async with self.engine.begin() as conn:
            for event in events:
                if isinstance(event, EscalationEvent):
                    await _fold(conn, event)
                    if metric:
                        await conn.execute(
                            update(escalations)
                            .where(
                                escalations.c.id == event.aggregate_id, escalations.c.metric == ""
                            )
                            .values(metric=metric)
                        )


async def _fold(conn: AsyncConnection, event: EscalationEvent) -> None:
    row = (
        (await conn.execute(select(escalations).where(escalations.c.id == event.aggregate_id)))
        .mappings()
        .first()
    )
    if row is None:
        await conn.execute(
            insert(escalations).values(
                id=event.aggregate_id,
                alert_id=event.alert_id,
                policy=event.policy,
                generation=event.generation,
                labels={},
                status="running",
                updated_at=event.time,
            )
        )
        current = NOWHERE, NOWHERE, "running"
    else:
        current = (
            (int(row["scheduled_round"]), int(row["scheduled_step"])),
            (int(row["fired_round"]), int(row["fired_step"])),
            str(row["status"]),
        )
    changes = _changes(event, *current)
    if changes:
        await conn.execute(
            update(escalations)
            .where(escalations.c.id == event.aggregate_id)
            .values(**changes, updated_at=event.time)
        )
    if isinstance(event, EscalationStopped) and event.reason == "resolved":
        await _mark_resolved(conn, event.alert_id, event.time)


def _changes(
    event: EscalationEvent, scheduled: tuple[int, int], fired: tuple[int, int], status: str
) -> dict[str, Any]:
    if isinstance(event, EscalationStarted):
        return {
            "cause": event.causation_id,
            "fingerprint": event.fingerprint,
            "rule": event.rule,
            "severity": event.severity,
            "labels": dict(event.labels),
            "summary": event.summary,
        }
    if isinstance(event, EscalationStepScheduled):
        if (event.round, event.step) <= scheduled:
            return {}
        return {
            "scheduled_round": event.round,
            "scheduled_step": event.step,
            "due_at": event.due_at,
        }
    if isinstance(event, EscalationStepFired):
        changes: dict[str, Any] = {"metric": event.metric} if event.metric else {}
        if (event.round, event.step) > fired:
            changes |= {"fired_round": event.round, "fired_step": event.step}
        return changes
    if isinstance(event, EscalationStopped):
        return {} if status == "stopped" else {"status": "stopped", "reason": event.reason}
    return {}


async def _mark_resolved(conn: AsyncConnection, alert_id: str, at: datetime) -> None:
    result = await conn.execute(
        update(alert_states).where(alert_states.c.alert_id == alert_id).values(resolved_at=at)
    )
    if result.rowcount == 0:
        await conn.execute(insert(alert_states).values(alert_id=alert_id, resolved_at=at))
