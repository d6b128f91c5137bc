"""Bodies of the incidents section."""

from __future__ import annotations

from services.gateway.common.schemas import Body, Public, TimelineEntryPublic, UtcDateTime
from shared.commands import OpenIncident
from shared.events import IncidentSeverity, IncidentStatus


class IncidentPublic(Public):
    id: str
    title: str
    description: str
    severity: IncidentSeverity
    status: IncidentStatus
    assignee: str
    opened_by: str
    alert_id: str
    fingerprint: str
    opened_at: UtcDateTime
    resolved_at: UtcDateTime | None
    version: int
    updated_at: UtcDateTime


class IncidentNotePublic(Public):
    id: str
    text: str
    author: str
    time: UtcDateTime


class IncidentDetailPublic(IncidentPublic):
    timeline: list[TimelineEntryPublic]
    notes: list[IncidentNotePublic]


class IncidentCreate(OpenIncident):
    """Opens an incident by hand; alert-driven incidents are opened by the incidents service."""


class IncidentStatusUpdate(Body):
    status: IncidentStatus
    by: str = "api"
    message: str = ""


class IncidentNoteCreate(Body):
    text: str
    author: str = "api"


class IncidentAssigneeUpdate(Body):
    assignee: str
    by: str = "api"


class IncidentSeverityUpdate(Body):
    severity: IncidentSeverity
    by: str = "api"
