"""Applies ALERTS events to the alerts read model."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.alerts.explain import describe_refs
from services.gateway.alerts.tables import alert_suppression, alert_timeline, alerts
from services.gateway.alerts.views import alert_views
from services.gateway.common.projection import LiveView, Projection
from services.gateway.common.tables import upsert
from shared import subjects
from shared.configtypes import format_duration
from shared.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertEvent,
    AlertFired,
    AlertFlapping,
    AlertResolved,
    AlertSettled,
    AlertSuppressionChanged,
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
    else:
        detail = _notice(event)
        await _upsert_alert(conn, event, identity, {})
    muted = [
        r
        for r in event.suppressed_by
        if not isinstance(event, AlertFlapping) or r.kind != "flapping"
    ]
    if muted and not isinstance(event, AlertSuppressionChanged):
        detail = f"{detail}; pages nobody: {describe_refs(muted)}".lstrip("; ")
    await _suppression(conn, event)
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


def _notice(event: AlertEvent) -> str:
    if isinstance(event, AlertSuppressionChanged):
        if event.suppressed_by:
            return f"pages nobody: {describe_refs(event.suppressed_by)}"
        ended = describe_refs(event.previous) or "suppression"
        return f"no longer {ended}: pages now" if event.status == "firing" else f"no longer {ended}"
    if isinstance(event, AlertFlapping):
        return f"flapping: {event.changes} changes within {format_duration(event.window_s)}"
    if isinstance(event, AlertSettled):
        return f"stopped flapping: {event.status}"
    return ""


async def _suppression(conn: AsyncConnection, event: AlertEvent) -> None:
    """The alert's reasons not to page, as its latest event states them."""
    refs = event.suppressed_by
    flapping = any(r.kind == "flapping" for r in refs)
    await upsert(
        conn,
        alert_suppression,
        {"alert_id": event.aggregate_id},
        {
            "suppressed_by": [r.model_dump(mode="json") for r in refs],
            "suppressed": bool(refs),
            "silenced": any(r.kind == "silence" for r in refs),
            "flapping": flapping,
        },
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
        live=LiveView("alert", alert_views),
    ),
)
