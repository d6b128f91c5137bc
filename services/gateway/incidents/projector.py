"""Applies INCIDENTS events to the incidents read model."""

from __future__ import annotations

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.common.projection import LiveView, Projection
from services.gateway.common.tables import upsert
from services.gateway.common.views import rows_as
from services.gateway.incidents.schemas import IncidentPublic
from services.gateway.incidents.tables import incident_notes, incident_timeline, incidents
from shared import subjects
from shared.events import (
    Event,
    IncidentAssigned,
    IncidentNoteAdded,
    IncidentOpened,
    IncidentResolved,
    IncidentSeverityChanged,
    IncidentStatusChanged,
)
from shared.streams import INCIDENTS


async def project_incident(conn: AsyncConnection, event: Event, seq: int) -> None:
    incident_id = event.aggregate_id
    touched = {"version": event.version, "updated_at": event.time}
    by, detail = "", ""
    where = incidents.c.id == incident_id
    if isinstance(event, IncidentOpened):
        by, detail = event.opened_by, event.title
        await upsert(
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
        await upsert(
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


PROJECTIONS = (
    Projection(
        "gateway-incidents",
        INCIDENTS,
        f"{subjects.INCIDENT_EVENTS}.>",
        project_incident,
        live=LiveView("incident", rows_as(IncidentPublic, incidents)),
    ),
)
