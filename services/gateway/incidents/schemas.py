"""Bodies of the incidents section."""

from __future__ import annotations

from pydantic import Field

from services.gateway.common.schemas import Body, Public, TimelineEntryPublic, UtcDateTime
from shared.commands import MAX_TITLE_CHARS
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


class IncidentCreate(Body):
    """Opens an incident by hand; alert-driven incidents are opened by the incidents service.
    Who opened it is the authenticated identity."""

    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    severity: IncidentSeverity = "warning"
    description: str = Field(default="", max_length=10_000)
    assignee: str = Field(default="", max_length=100)


class IncidentStatusUpdate(Body):
    status: IncidentStatus
    message: str = Field(default="", max_length=10_000)


class IncidentNoteCreate(Body):
    text: str = Field(min_length=1, max_length=10_000)


class IncidentAssigneeUpdate(Body):
    assignee: str = Field(min_length=1, max_length=100)


class IncidentSeverityUpdate(Body):
    severity: IncidentSeverity
