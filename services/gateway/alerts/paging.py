"""Escalation steps on an alert's timeline: the PAGING stream projected by alert.

PAGING has its own stream sequences, so its entries live in their own table (keyed by
PAGING's sequence) and the alert's detail merges them with the alert's own events by
time. Each entry says who was paged, through which channel and address, and why
(a channel, a person, or whoever was on call in a schedule).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    String,
    Table,
    Text,
    insert,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.alerts.views import alert_views
from services.gateway.common.projection import LiveView, Projection
from services.gateway.common.tables import metadata
from shared import subjects
from shared.events import Event
from shared.events.paging import (
    EscalationEvent,
    EscalationStarted,
    EscalationStepFired,
    EscalationStepScheduled,
    EscalationStopped,
    PageTarget,
)
from shared.streams import PAGING

paging_timeline = Table(
    "gateway_alert_paging",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("alert_id", String(200), nullable=False),
    Column("escalation_id", String(100), nullable=False),
    Column("event_id", String(100), nullable=False),
    Column("type", String(100), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("by", String(100), nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    Column("event", JSON, nullable=False),
    Index("gateway_alert_paging_alert", "alert_id", "seq"),
)


def _step(event: EscalationStepScheduled | EscalationStepFired) -> str:
    again = f", round {event.round + 1}" if event.round else ""
    return f"step {event.step + 1}{again} of {event.policy}"


def _target(target: PageTarget) -> str:
    address = f" ({target.recipient})" if target.recipient else ""
    if not target.user:
        return f"channel {target.channel}{address}"
    return f"{target.user} via {target.channel}{address}, {target.via}"


def describe(event: EscalationEvent) -> str:
    """One line a person reads on the timeline."""
    if isinstance(event, EscalationStarted):
        again = f" again (generation {event.generation + 1})" if event.generation else ""
        return f"escalation {event.policy} started{again}"
    if isinstance(event, EscalationStepScheduled):
        return f"{_step(event)} due at {event.due_at.isoformat()}"
    if isinstance(event, EscalationStepFired):
        reached = "; ".join(_target(t) for t in event.targets) or "nobody"
        text = f"{_step(event)} paged {reached}"
        if event.unresolved:
            text += "; not reached: " + "; ".join(event.unresolved)
        return text
    if isinstance(event, EscalationStopped):
        return f"escalation {event.policy} stopped: {event.reason}"
    return event.type


async def project_paging(conn: AsyncConnection, event: Event, seq: int) -> None:
    if not isinstance(event, EscalationEvent):
        return
    await conn.execute(
        insert(paging_timeline).values(
            seq=seq,
            alert_id=event.alert_id,
            escalation_id=event.aggregate_id,
            event_id=event.id,
            type=event.type,
            time=event.time,
            by=event.by if isinstance(event, EscalationStopped) else "",
            detail=describe(event),
            event=event.model_dump(mode="json"),
        )
    )


def by_alert(event: Event) -> str:
    return event.alert_id if isinstance(event, EscalationEvent) else event.aggregate_id


PROJECTIONS = (
    Projection(
        "gateway-paging",
        PAGING,
        f"{subjects.PAGING_EVENTS}.>",
        project_paging,
        # the alert's timeline changed: live clients reload the alert
        live=LiveView("alert", alert_views, key=by_alert),
    ),
)
