"""The incident aggregate without I/O: given events, when a command, then events."""

from __future__ import annotations

import pytest

from services.incidents.domain import (
    Cause,
    Incident,
    IncidentCommand,
    OpenIncidentAs,
    apply,
    decide,
    fold,
)
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
    IncidentSeverityChanged,
    IncidentStatus,
    IncidentStatusChanged,
)

ID = "inc-1"


def opened() -> list[Event]:
    return decide(
        None, OpenIncidentAs(incident_id=ID, title="API down", severity="critical", by="ann")
    )


def given(*commands: IncidentCommand) -> tuple[Incident, list[Event]]:
    """The incident after opening it and running ``commands`` in order."""
    events = opened()
    incident = fold(events)
    for command in commands:
        new = decide(incident, command)
        for event in new:
            incident = apply(incident, event)
        events += new
    assert incident is not None
    return incident, events


def move(status: IncidentStatus, by: str = "ann") -> ChangeIncidentStatus:
    return ChangeIncidentStatus(incident_id=ID, status=status, by=by)


def test_open() -> None:
    (event,) = opened()
    assert isinstance(event, IncidentOpened)
    assert (event.aggregate_id, event.version, event.title, event.opened_by) == (
        ID,
        1,
        "API down",
        "ann",
    )
    incident = fold([event])
    assert incident is not None
    assert (incident.status, incident.severity, incident.timeline) == (
        "investigating",
        "critical",
        (event,),
    )


def test_opening_twice_is_refused() -> None:
    incident, _ = given()
    with pytest.raises(InvalidTransition):
        decide(incident, OpenIncidentAs(incident_id=ID, title="again", severity="info", by="bob"))


def test_forward_moves_may_skip_steps() -> None:
    incident, events = given(move("monitoring", by="bob"))
    changed = events[-1]
    assert isinstance(changed, IncidentStatusChanged)
    assert (changed.previous_status, changed.status, changed.by, changed.version) == (
        "investigating",
        "monitoring",
        "bob",
        2,
    )
    assert incident.status == "monitoring"


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ([], "investigating"),  # same status
        (["identified"], "identified"),
        (["monitoring"], "identified"),  # backwards
        (["monitoring"], "investigating"),
        (["resolved"], "resolved"),
        (["resolved"], "identified"),  # only a reopen leaves resolved
        (["resolved"], "monitoring"),
    ],
)
def test_invalid_status_moves(path: list[IncidentStatus], target: IncidentStatus) -> None:
    incident, _ = given(*(move(s) for s in path))
    with pytest.raises(InvalidTransition):
        decide(incident, move(target))


def test_resolving_emits_incident_resolved_from_any_open_status() -> None:
    paths: list[list[IncidentStatus]] = [[], ["identified"], ["identified", "monitoring"]]
    for path in paths:
        incident, events = given(*(move(s) for s in path), move("resolved"))
        resolved = events[-1]
        assert isinstance(resolved, IncidentResolved)
        assert (resolved.previous_status, resolved.title, resolved.severity) == (
            path[-1] if path else "investigating",
            "API down",
            "critical",
        )
        assert incident.status == "resolved"


def test_reopen_after_resolve() -> None:
    incident, events = given(move("resolved"), move("investigating"))
    reopened = events[-1]
    assert isinstance(reopened, IncidentStatusChanged)
    assert (reopened.previous_status, reopened.status) == ("resolved", "investigating")
    assert incident.status == "investigating"
    assert [e.version for e in events] == [1, 2, 3]


def test_notes_assignee_severity_and_timeline() -> None:
    incident, events = given(
        AddIncidentNote(incident_id=ID, text="restarted pods", author="ann"),
        AssignIncident(incident_id=ID, assignee="bob", by="ann"),
        ChangeIncidentSeverity(incident_id=ID, severity="warning", by="bob"),
        AddIncidentNote(incident_id=ID, text="stable now", author="bob"),
    )
    note, assigned, severity = events[1], events[2], events[3]
    assert isinstance(note, IncidentNoteAdded) and note.note_id
    assert isinstance(assigned, IncidentAssigned) and (assigned.assignee, assigned.by) == (
        "bob",
        "ann",
    )
    assert isinstance(severity, IncidentSeverityChanged)
    assert (severity.previous_severity, severity.severity) == ("critical", "warning")
    assert [(n.text, n.author) for n in incident.notes] == [
        ("restarted pods", "ann"),
        ("stable now", "bob"),
    ]
    assert incident.notes[0].note_id != incident.notes[1].note_id
    assert (incident.assignee, incident.severity, incident.version) == ("bob", "warning", 5)
    assert [e.type for e in incident.timeline] == [
        "IncidentOpened",
        "IncidentNoteAdded",
        "IncidentAssigned",
        "IncidentSeverityChanged",
        "IncidentNoteAdded",
    ]


def test_same_severity_or_assignee_is_refused() -> None:
    incident, _ = given(AssignIncident(incident_id=ID, assignee="bob"))
    with pytest.raises(InvalidTransition):
        decide(incident, ChangeIncidentSeverity(incident_id=ID, severity="critical"))
    with pytest.raises(InvalidTransition):
        decide(incident, AssignIncident(incident_id=ID, assignee="bob"))


def test_commands_on_a_missing_incident_are_not_found() -> None:
    for command in (
        move("identified"),
        AddIncidentNote(incident_id=ID, text="x"),
        AssignIncident(incident_id=ID, assignee="bob"),
        ChangeIncidentSeverity(incident_id=ID, severity="info"),
    ):
        with pytest.raises(NotFound):
            decide(None, command)


def test_a_trigger_gives_deterministic_ids_and_is_decided_once() -> None:
    cause = Cause(trigger_id="alert-event-7", correlation_id="flow-1")
    opening = OpenIncidentAs(
        incident_id=ID, title="t", severity="critical", by="vigil", alert_id="a1"
    )
    first, again = decide(None, opening, cause), decide(None, opening, cause)
    assert [e.id for e in first] == [e.id for e in again]
    assert (first[0].causation_id, first[0].correlation_id) == ("alert-event-7", "flow-1")
    incident = fold(first)
    # the same trigger redelivered once the incident exists changes nothing
    assert decide(incident, move("resolved"), cause) == []
    assert [e.id for e in opened()] != [e.id for e in opened()]  # direct commands get fresh ids
