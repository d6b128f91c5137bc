"""``GET /api/monitoring/incidents/{id}/logs``: the log lines around an incident.

The lines are the log store's (asked over NATS, as the logs API does); what is asked for
comes from the incident and its alert: the alert's ``service``, ``host`` and ``instance``
labels where it has them, from a little before the incident opened until it resolved
(or now). An incident opened by hand has no alert: every line of its time range."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.alerts.tables import alerts
from services.gateway.incidents.tables import incidents
from services.gateway.logs.schemas import LogPagePublic
from shared.configtypes import parse_duration
from shared.errors import InvalidInput, NotFound

DEFAULT_BEFORE_S = 15 * 60.0
MAX_BEFORE_S = 7 * 86400.0
LABELS_SHARED = ("host", "instance")  # besides service, the line's own field
END_SLACK_S = 0.001  # the end is exclusive: a line stamped as the incident resolved counts


class IncidentLogFilterPublic(BaseModel):
    start: float = Field(description="Unix seconds: the incident's opening minus before")
    end: float = Field(description="Unix seconds: when it resolved, or now (exclusive)")
    service: str | None = Field(description="The alert's service label, if it has one")
    labels: dict[str, str] = Field(description="The alert's host and instance labels it has")


class IncidentLogsPublic(LogPagePublic):
    filter: IncidentLogFilterPublic = Field(description="What the lines were selected by")


def parse_before(text: str | None) -> float:
    if text is None or not text.strip():
        return DEFAULT_BEFORE_S
    try:
        seconds = parse_duration(text.strip())
    except ValueError as exc:
        raise InvalidInput(f"before: {exc}", field="before") from None
    if seconds > MAX_BEFORE_S:
        raise InvalidInput("before: at most 7d", field="before")
    return seconds


def _seconds(at: datetime) -> float:
    return at.timestamp()


async def incident_log_filter(
    engine: AsyncEngine, incident_id: str, before_s: float
) -> dict[str, Any]:
    """The search filter for the incident's lines; NotFound naming the id when none."""
    async with engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    select(
                        incidents.c.alert_id, incidents.c.opened_at, incidents.c.resolved_at
                    ).where(incidents.c.id == incident_id)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound(f"incident_id: no incident {incident_id!r}", field="incident_id")
        labels: dict[str, str] = {}
        if row["alert_id"]:
            found = await conn.scalar(select(alerts.c.labels).where(alerts.c.id == row["alert_id"]))
            labels = dict(found or {})
    start = _seconds(row["opened_at"]) - before_s
    resolved = row["resolved_at"]
    end = _seconds(resolved) + END_SLACK_S if resolved is not None else time.time() + END_SLACK_S
    service = labels.get("service") or None
    shared = {name: labels[name] for name in LABELS_SHARED if labels.get(name)}
    return {
        "start": start,
        "end": max(end, start + END_SLACK_S),
        "services": [service] if service else [],
        "labels": shared,
    }
