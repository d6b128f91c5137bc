"""The incident aggregate: pure ``decide(state, command) -> events`` and ``apply(state, event)``.

Status moves forward (investigating → identified → monitoring → resolved) and may
skip steps; the only way back is a reopen, resolved → investigating. A command that
would change nothing is an InvalidTransition rather than a silent no-op, so callers
learn that their view was stale.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared.commands import (
    AddIncidentNote,
    AssignIncident,
    ChangeIncidentSeverity,
    ChangeIncidentStatus,
)
from shared.errors import InvalidTransition, NotFound
from shared.events import (
    Event,
    IncidentAssigned,
    IncidentNoteAdded,
    IncidentOpened,
    IncidentResolved,
    IncidentSeverity,
    IncidentSeverityChanged,
    IncidentStatus,
    IncidentStatusChanged,
    derived_id,
    new_id,
)

STATUS_ORDER: dict[IncidentStatus, int] = {
    "investigating": 0,
    "identified": 1,
    "monitoring": 2,
    "resolved": 3,
}


@dataclass(frozen=True)
class Note:
    note_id: str
    text: str
    author: str
    time: datetime


@dataclass(frozen=True)
class Incident:
    incident_id: str
    title: str
    severity: IncidentSeverity
    status: IncidentStatus
    version: int
    description: str = ""
    assignee: str = ""
    opened_by: str = ""
    alert_id: str = ""
    fingerprint: str = ""
    notes: tuple[Note, ...] = ()
    timeline: tuple[Event, ...] = ()

    def records(self, trigger_id: str) -> bool:
        """Whether a message with this id already caused a change here."""
        return any(event.causation_id == trigger_id for event in self.timeline)


def apply(incident: Incident | None, event: Event) -> Incident:
    """The only way incident state changes; the timeline is every event applied."""
    if isinstance(event, IncidentOpened):
        return Incident(
            incident_id=event.aggregate_id,
            title=event.title,
            severity=event.severity,
            status="investigating",
            version=event.version,
            description=event.description,
            assignee=event.assignee,
            opened_by=event.opened_by,
            alert_id=event.alert_id,
            fingerprint=event.fingerprint,
            timeline=(event,),
        )
    if incident is None:
        raise InvalidTransition(f"{event.type} before IncidentOpened on {event.aggregate_id}")
    incident = replace(incident, version=event.version, timeline=(*incident.timeline, event))
    if isinstance(event, IncidentStatusChanged):
        return replace(incident, status=event.status)
    if isinstance(event, IncidentResolved):
        return replace(incident, status="resolved")
    if isinstance(event, IncidentNoteAdded):
        note = Note(event.note_id, event.text, event.author, event.time)
        return replace(incident, notes=(*incident.notes, note))
    if isinstance(event, IncidentAssigned):
        return replace(incident, assignee=event.assignee)
    if isinstance(event, IncidentSeverityChanged):
        return replace(incident, severity=event.severity)
    return incident


def fold(events: list[Event]) -> Incident | None:
    incident: Incident | None = None
    for event in events:
        incident = apply(incident, event)
    return incident


@dataclass(frozen=True)
class Cause:
    """What a decision answers. With a ``trigger_id`` (a message that may be redelivered) the
    event ids are derived from it, and a trigger already in the timeline decides nothing."""

    trigger_id: str = ""
    correlation_id: str = ""

    def event_id(self, incident_id: str, what: str) -> str:
        if not self.trigger_id:
            return new_id()
        return derived_id("incident-event", self.trigger_id, incident_id, what)

    def envelope(self, incident_id: str, version: int, what: str) -> dict[str, Any]:
        """Identity and causation of the event that takes the incident to ``version``."""
        return {
            "id": self.event_id(incident_id, f"{what}-{version}" if version > 1 else what),
            "aggregate_id": incident_id,
            "version": version,
            "correlation_id": self.correlation_id,
            "causation_id": self.trigger_id,
        }


DIRECT = Cause()


@dataclass(frozen=True)
class OpenIncidentAs:
    """OpenIncident with the id the new incident gets, and its alert when an alert opened it."""

    incident_id: str
    title: str
    severity: IncidentSeverity
    by: str
    description: str = ""
    assignee: str = ""
    alert_id: str = ""
    fingerprint: str = ""


IncidentCommand = (
    OpenIncidentAs
    | ChangeIncidentStatus
    | AddIncidentNote
    | AssignIncident
    | ChangeIncidentSeverity
)


def decide(
    incident: Incident | None, command: IncidentCommand, cause: Cause = DIRECT
) -> list[Event]:
    if cause.trigger_id and incident is not None and incident.records(cause.trigger_id):
        return []  # a redelivered trigger: its events are already in the timeline
    if isinstance(command, OpenIncidentAs):
        return _open(incident, command, cause)
    if incident is None:
        raise NotFound(f"no incident {command.incident_id}")
    if isinstance(command, ChangeIncidentStatus):
        return _change_status(incident, command, cause)
    if isinstance(command, AddIncidentNote):
        envelope = cause.envelope(incident.incident_id, incident.version + 1, "note")
        return [
            IncidentNoteAdded(
                **envelope,
                note_id=derived_id("note", envelope["id"]),
                text=command.text,
                author=command.author,
            )
        ]
    if isinstance(command, AssignIncident):
        if command.assignee == incident.assignee:
            raise InvalidTransition(f"incident is already assigned to {command.assignee}")
        return [
            IncidentAssigned(
                **cause.envelope(incident.incident_id, incident.version + 1, "assigned"),
                assignee=command.assignee,
                by=command.by,
            )
        ]
    if command.severity == incident.severity:
        raise InvalidTransition(f"incident severity is already {command.severity}")
    return [
        IncidentSeverityChanged(
            **cause.envelope(incident.incident_id, incident.version + 1, "severity"),
            previous_severity=incident.severity,
            severity=command.severity,
            by=command.by,
        )
    ]


def can_move(current: IncidentStatus, target: IncidentStatus) -> bool:
    if current == "resolved":
        return target == "investigating"
    return STATUS_ORDER[target] > STATUS_ORDER[current]


def _open(incident: Incident | None, command: OpenIncidentAs, cause: Cause) -> list[Event]:
    if incident is not None:
        raise InvalidTransition(f"incident {command.incident_id} is already open")
    return [
        IncidentOpened(
            **cause.envelope(command.incident_id, 1, "opened"),
            title=command.title,
            severity=command.severity,
            description=command.description,
            assignee=command.assignee,
            opened_by=command.by,
            alert_id=command.alert_id,
            fingerprint=command.fingerprint,
        )
    ]


def _change_status(incident: Incident, command: ChangeIncidentStatus, cause: Cause) -> list[Event]:
    if command.status == incident.status:
        raise InvalidTransition(f"incident is already {command.status}")
    if not can_move(incident.status, command.status):
        raise InvalidTransition(
            f"incident cannot go from {incident.status} to {command.status}"
            + (" (only a reopen to investigating)" if incident.status == "resolved" else "")
        )
    version = incident.version + 1
    if command.status == "resolved":
        return [
            IncidentResolved(
                **cause.envelope(incident.incident_id, version, "resolved"),
                previous_status=incident.status,
                title=incident.title,
                severity=incident.severity,
                by=command.by,
                message=command.message,
            )
        ]
    return [
        IncidentStatusChanged(
            **cause.envelope(incident.incident_id, version, "status"),
            previous_status=incident.status,
            status=command.status,
            by=command.by,
            message=command.message,
        )
    ]
