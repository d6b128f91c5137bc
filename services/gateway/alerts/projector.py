"""Applies ALERTS events to the alerts read model."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.alerts.schemas import AlertPublic
from services.gateway.alerts.tables import alert_timeline, alerts
from services.gateway.common.projection import LiveView, Projection
from services.gateway.common.tables import upsert
from services.gateway.common.views import rows_as
from shared import subjects
from shared.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertEvent,
    AlertFired,
    AlertResolved,
    Event,
)
from shared.streams import ALERTS


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
        await upsert(
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


PROJECTIONS = (
    Projection(
        "gateway-alerts",
        ALERTS,
        f"{subjects.ALERT_EVENTS}.>",
        project_alert,
        live=LiveView("alert", rows_as(AlertPublic, alerts)),
    ),
)
