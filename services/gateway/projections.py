"""The gateway's read models: one SQL projection per stream, each checkpointed by stream
sequence in the same transaction as its change (ProjectionStore.apply).

Every value written comes from the event (times included), never from the clock, so
replaying the log rebuilds exactly the same rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from shared import subjects
from shared.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertEvent,
    AlertFired,
    AlertResolved,
    CheckConfigured,
    CheckRemoved,
    CheckRunRecorded,
    Event,
    IncidentAssigned,
    IncidentNoteAdded,
    IncidentOpened,
    IncidentResolved,
    IncidentSeverityChanged,
    IncidentStatusChanged,
    MessageDeadLettered,
    NotificationDelivered,
    NotificationFailed,
)
from shared.streams import ALERTS, DEADLETTERS, INCIDENTS, NOTIFICATIONS, SYNTHETIC, StreamSpec

SERVICE = "gateway"
RESULTS_KEPT_PER_CHECK = 1000

metadata = MetaData()

alerts = Table(
    "gateway_alerts",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("rule", String(200), nullable=False),
    Column("fingerprint", String(200), nullable=False),
    Column("metric", String(200), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("severity", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("value", Float),
    Column("threshold", Float),
    Column("summary", Text, nullable=False, default=""),
    Column("fired_at", DateTime(timezone=True)),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("acknowledged_by", String(100)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolved_by", String(100)),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("gateway_alerts_status_severity", "status", "severity"),
    Index("gateway_alerts_status_fired_at", "status", "fired_at"),
    Index("gateway_alerts_fired_at", "fired_at"),
)


def _timeline(name: str, owner: str) -> Table:
    """Every event of one aggregate, in stream order: the history the API shows."""
    return Table(
        f"gateway_{name}_timeline",
        metadata,
        Column("seq", BigInteger, primary_key=True, autoincrement=False),
        Column(owner, String(200), nullable=False),
        Column("event_id", String(100), nullable=False),
        Column("type", String(100), nullable=False),
        Column("time", DateTime(timezone=True), nullable=False),
        Column("by", String(100), nullable=False, default=""),
        Column("detail", Text, nullable=False, default=""),
        Column("event", JSON, nullable=False),
        Index(f"gateway_{name}_timeline_{name}", owner, "seq"),
    )


alert_timeline = _timeline("alert", "alert_id")

incidents = Table(
    "gateway_incidents",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("title", String(300), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("severity", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("assignee", String(100), nullable=False, default=""),
    Column("opened_by", String(100), nullable=False, default=""),
    Column("alert_id", String(200), nullable=False, default=""),
    Column("fingerprint", String(200), nullable=False, default=""),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("gateway_incidents_status_severity", "status", "severity"),
    Index("gateway_incidents_status_opened_at", "status", "opened_at"),
    Index("gateway_incidents_opened_at", "opened_at"),
)

incident_timeline = _timeline("incident", "incident_id")

incident_notes = Table(
    "gateway_incident_notes",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("incident_id", String(200), nullable=False),
    Column("text", Text, nullable=False),
    Column("author", String(100), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("gateway_incident_notes_incident", "incident_id", "seq"),
)

checks = Table(
    "gateway_checks",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("url", Text, nullable=False),
    Column("method", String(10), nullable=False),
    Column("expected_status", Integer, nullable=False),
    Column("timeout_s", Float, nullable=False),
    Column("interval_s", Float, nullable=False),
    Column("failures_before_alert", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("source", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("configured_at", DateTime(timezone=True), nullable=False),
    # the latest run, kept on the check so the dashboard needs no per-check lookup
    Column("last_ok", Boolean),
    Column("last_status_code", Integer),
    Column("last_latency_ms", Float),
    Column("last_error", Text),
    Column("last_run_at", DateTime(timezone=True)),
    Column("consecutive_failures", Integer, nullable=False, default=0),
)

check_results = Table(
    "gateway_check_results",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("check_id", String(200), nullable=False),
    Column("name", String(100), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("status_code", Integer),
    Column("latency_ms", Float, nullable=False),
    Column("error", Text, nullable=False, default=""),
    Column("consecutive_failures", Integer, nullable=False),
    Column("trigger", String(20), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Index("gateway_check_results_check", "check_id", "seq"),
)

notifications = Table(
    "gateway_notifications",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("event_id", String(100), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("status_code", Integer),
    Column("latency_ms", Float),
    Column("error", Text, nullable=False, default=""),
    Column("permanent", Boolean, nullable=False, default=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("gateway_notifications_seq", "seq"),
)

dead_letters = Table(
    "gateway_dead_letters",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("consumer", String(200), nullable=False),
    Column("stream", String(100), nullable=False),
    Column("stream_seq", BigInteger, nullable=False),
    Column("subject", String(500), nullable=False),
    Column("deliveries", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("gateway_dead_letters_seq", "seq"),
)


async def _upsert(
    conn: AsyncConnection, table: Table, key: dict[str, Any], values: dict[str, Any]
) -> None:
    """Portable upsert; safe because a projection has one message in flight."""
    condition = [table.c[name] == value for name, value in key.items()]
    result = await conn.execute(update(table).where(*condition).values(**values))
    if result.rowcount == 0:
        await conn.execute(insert(table).values(**key, **values))


# --- alerts ------------------------------------------------------------------


async def project_alert(conn: AsyncConnection, event: Event, seq: int) -> None:
    if not isinstance(event, AlertEvent):
        return
    identity = {
        "rule": event.rule,
        "fingerprint": event.fingerprint,
        "metric": event.metric,
        "labels": dict(event.labels),
        "severity": event.severity,
        "version": event.version,
        "updated_at": event.time,
    }
    by, detail = "", ""
    if isinstance(event, AlertFired):
        detail = event.summary or f"{event.metric} = {event.value:g} ≥ {event.threshold:g}"
        await _upsert(
            conn,
            alerts,
            {"id": event.aggregate_id},
            {
                **identity,
                "status": "firing",
                "value": event.value,
                "threshold": event.threshold,
                "summary": event.summary,
                "fired_at": event.time,
                "acknowledged_at": None,
                "acknowledged_by": None,
                "resolved_at": None,
                "resolved_by": None,
            },
        )
    elif isinstance(event, AlertEscalated):
        detail = f"{event.previous_severity} → {event.severity} at {event.value:g}"
        await _upsert_alert(
            conn, event, identity, {"value": event.value, "threshold": event.threshold}
        )
    elif isinstance(event, AlertAcknowledged):
        by, detail = event.by, event.comment
        await _upsert_alert(
            conn,
            event,
            identity,
            {"status": "acknowledged", "acknowledged_at": event.time, "acknowledged_by": event.by},
        )
    elif isinstance(event, AlertResolved):
        by, detail = event.by, event.reason
        changes: dict[str, Any] = {
            "status": "resolved",
            "resolved_at": event.time,
            "resolved_by": event.by,
        }
        if event.value is not None:
            changes["value"] = event.value
        await _upsert_alert(conn, event, identity, changes)
    await conn.execute(
        insert(alert_timeline).values(
            seq=seq,
            alert_id=event.aggregate_id,
            event_id=event.id,
            type=event.type,
            time=event.time,
            by=by,
            detail=detail,
            event=event.model_dump(mode="json"),
        )
    )


async def _upsert_alert(
    conn: AsyncConnection, event: AlertEvent, identity: dict[str, Any], changes: dict[str, Any]
) -> None:
    """Update an alert; if its first event is missing, start the row from this one."""
    result = await conn.execute(
        update(alerts).where(alerts.c.id == event.aggregate_id).values(**identity, **changes)
    )
    if result.rowcount == 0:
        row = {"status": "firing", "summary": "", "fired_at": event.time, **identity, **changes}
        await conn.execute(insert(alerts).values(id=event.aggregate_id, **row))


# --- incidents ---------------------------------------------------------------


async def project_incident(conn: AsyncConnection, event: Event, seq: int) -> None:
    incident_id = event.aggregate_id
    touched = {"version": event.version, "updated_at": event.time}
    by, detail = "", ""
    where = incidents.c.id == incident_id
    if isinstance(event, IncidentOpened):
        by, detail = event.opened_by, event.title
        await _upsert(
            conn,
            incidents,
            {"id": incident_id},
            {
                **touched,
                "title": event.title,
                "description": event.description,
                "severity": event.severity,
                "status": "investigating",
                "assignee": event.assignee,
                "opened_by": event.opened_by,
                "alert_id": event.alert_id,
                "fingerprint": event.fingerprint,
                "opened_at": event.time,
                "resolved_at": None,
            },
        )
    elif isinstance(event, IncidentStatusChanged):
        by, detail = event.by, event.message or f"{event.previous_status} → {event.status}"
        resolved_at = event.time if event.status == "resolved" else None
        await conn.execute(
            update(incidents)
            .where(where)
            .values(**touched, status=event.status, resolved_at=resolved_at)
        )
    elif isinstance(event, IncidentResolved):
        by, detail = event.by, event.message or "resolved"
        await conn.execute(
            update(incidents)
            .where(where)
            .values(**touched, status="resolved", resolved_at=event.time)
        )
    elif isinstance(event, IncidentNoteAdded):
        by, detail = event.author, event.text
        await _upsert(
            conn,
            incident_notes,
            {"id": event.note_id},
            {
                "incident_id": incident_id,
                "text": event.text,
                "author": event.author,
                "time": event.time,
                "seq": seq,
            },
        )
        await conn.execute(update(incidents).where(where).values(**touched))
    elif isinstance(event, IncidentAssigned):
        by, detail = event.by, f"assigned to {event.assignee}"
        await conn.execute(
            update(incidents).where(where).values(**touched, assignee=event.assignee)
        )
    elif isinstance(event, IncidentSeverityChanged):
        by, detail = event.by, f"{event.previous_severity} → {event.severity}"
        await conn.execute(
            update(incidents).where(where).values(**touched, severity=event.severity)
        )
    else:
        return
    await conn.execute(
        insert(incident_timeline).values(
            seq=seq,
            incident_id=incident_id,
            event_id=event.id,
            type=event.type,
            time=event.time,
            by=by,
            detail=detail,
            event=event.model_dump(mode="json"),
        )
    )


# --- synthetic ---------------------------------------------------------------


async def project_synthetic(
    conn: AsyncConnection, event: Event, seq: int, keep: int = RESULTS_KEPT_PER_CHECK
) -> None:
    check_id = event.aggregate_id
    if isinstance(event, CheckConfigured):
        await _upsert(
            conn,
            checks,
            {"id": check_id},
            {
                "name": event.name,
                "kind": event.kind,
                "url": event.url,
                "method": event.method,
                "expected_status": event.expected_status,
                "timeout_s": event.timeout_s,
                "interval_s": event.interval_s,
                "failures_before_alert": event.failures_before_alert,
                "enabled": event.enabled,
                "source": event.source,
                "version": event.version,
                "configured_at": event.time,
            },
        )
    elif isinstance(event, CheckRemoved):
        await conn.execute(delete(check_results).where(check_results.c.check_id == check_id))
        await conn.execute(delete(checks).where(checks.c.id == check_id))
    elif isinstance(event, CheckRunRecorded):
        await conn.execute(
            insert(check_results).values(
                seq=seq,
                check_id=check_id,
                name=event.name,
                ok=event.ok,
                status_code=event.status_code,
                latency_ms=event.latency_ms,
                error=event.error,
                consecutive_failures=event.consecutive_failures,
                trigger=event.trigger,
                time=event.time,
            )
        )
        await conn.execute(
            update(checks)
            .where(checks.c.id == check_id)
            .values(
                last_ok=event.ok,
                last_status_code=event.status_code,
                last_latency_ms=event.latency_ms,
                last_error=event.error,
                last_run_at=event.time,
                consecutive_failures=event.consecutive_failures,
            )
        )
        await _prune_results(conn, check_id, keep)


async def _prune_results(conn: AsyncConnection, check_id: str, keep: int) -> None:
    """Keep the latest ``keep`` results of a check; older runs live on in the stream."""
    oldest_kept = await conn.scalar(
        select(check_results.c.seq)
        .where(check_results.c.check_id == check_id)
        .order_by(check_results.c.seq.desc())
        .offset(keep - 1)
        .limit(1)
    )
    if oldest_kept is not None:
        await conn.execute(
            delete(check_results).where(
                check_results.c.check_id == check_id, check_results.c.seq < oldest_kept
            )
        )


# --- notifications and dead letters -----------------------------------------


async def project_notification(conn: AsyncConnection, event: Event, seq: int) -> None:
    common: dict[str, Any]
    if isinstance(event, NotificationDelivered):
        common = {
            "status": "delivered",
            "status_code": event.status_code,
            "latency_ms": event.latency_ms,
            "error": "",
            "permanent": False,
        }
    elif isinstance(event, NotificationFailed):
        common = {
            "status": "failed",
            "status_code": None,
            "latency_ms": None,
            "error": event.error,
            "permanent": event.permanent,
        }
    else:
        return
    await _upsert(
        conn,
        notifications,
        {"id": event.aggregate_id},
        {
            **common,
            "event_id": event.event_id,
            "event_type": event.event_type,
            "channel": event.channel,
            "attempts": event.attempts,
            "time": event.time,
            "seq": seq,
        },
    )


async def project_dead_letter(conn: AsyncConnection, event: Event, seq: int) -> None:
    if not isinstance(event, MessageDeadLettered):
        return
    await _upsert(
        conn,
        dead_letters,
        {"id": event.id},
        {
            "consumer": event.consumer,
            "stream": event.stream,
            "stream_seq": event.stream_seq,
            "subject": event.subject,
            "deliveries": event.deliveries,
            "error": event.error,
            "payload": event.payload,
            "time": event.time,
            "seq": seq,
        },
    )


# --- the projections, by stream ---------------------------------------------

Projector = Callable[[AsyncConnection, Event, int], Awaitable[None]]


@dataclass(frozen=True)
class Projection:
    """One read model fed by one durable consumer; ``name`` is also its checkpoint key."""

    name: str
    stream: StreamSpec
    filter_subject: str
    project: Projector


PROJECTIONS: tuple[Projection, ...] = (
    Projection("gateway-alerts", ALERTS, f"{subjects.ALERT_EVENTS}.>", project_alert),
    Projection("gateway-incidents", INCIDENTS, f"{subjects.INCIDENT_EVENTS}.>", project_incident),
    Projection("gateway-synthetic", SYNTHETIC, "synthetic.>", project_synthetic),
    Projection(
        "gateway-notifications",
        NOTIFICATIONS,
        f"{subjects.NOTIFICATION_EVENTS}.>",
        project_notification,
    ),
    Projection(
        "gateway-deadletters", DEADLETTERS, f"{subjects.DEAD_LETTERS}.>", project_dead_letter
    ),
)

PROJECTION_BY_STREAM: dict[str, Projection] = {p.stream.name: p for p in PROJECTIONS}
