"""Incident aggregate events."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.events.base import Event

IncidentStatus = Literal["investigating", "identified", "monitoring", "resolved"]
IncidentSeverity = Literal["info", "warning", "critical"]


class IncidentOpened(Event):
    title: str
    severity: IncidentSeverity
    description: str = ""
    assignee: str = ""
    opened_by: str = Field(default="vigil", description="User, or 'vigil' when an alert opened it")
    alert_id: str = ""
    fingerprint: str = ""


class IncidentStatusChanged(Event):
    previous_status: IncidentStatus
    status: IncidentStatus
    by: str
    message: str = ""


class IncidentResolved(Event):
    """The terminal transition, separate so channels can announce it."""

    previous_status: IncidentStatus
    title: str
    severity: IncidentSeverity
    by: str
    message: str = ""


class IncidentNoteAdded(Event):
    note_id: str
    text: str
    author: str


class IncidentAssigned(Event):
    assignee: str
    by: str


class IncidentSeverityChanged(Event):
    previous_severity: IncidentSeverity
    severity: IncidentSeverity
    by: str
