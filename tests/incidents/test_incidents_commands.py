"""Incident commands through request/reply, as the gateway sends them."""

from __future__ import annotations

import pytest

from services.incidents.app import build
from shared import subjects
from shared.bus import EventBus
from shared.commands import (
    ADD_INCIDENT_NOTE,
    ASSIGN_INCIDENT,
    CHANGE_INCIDENT_SEVERITY,
    CHANGE_INCIDENT_STATUS,
    OPEN_INCIDENT,
)
from shared.config import VigilConfig
from shared.errors import InvalidInput, InvalidTransition, NotFound
from shared.events import IncidentOpened, IncidentResolved
from shared.settings import Settings
from tests.conftest import RuntimeFactory


async def test_an_incident_from_open_to_resolved(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build(settings, VigilConfig()))
    opened = await bus.request(
        OPEN_INCIDENT, {"title": "Login failing", "severity": "critical", "by": "ann"}
    )
    incident_id = opened["aggregate_id"]
    assert (opened["version"], opened["stream"]) == (1, "INCIDENTS")

    steps = [
        (ASSIGN_INCIDENT, {"assignee": "bob", "by": "ann"}),
        (ADD_INCIDENT_NOTE, {"text": "auth service OOM", "author": "bob"}),
        (CHANGE_INCIDENT_STATUS, {"status": "identified", "by": "bob"}),
        (CHANGE_INCIDENT_SEVERITY, {"severity": "warning", "by": "bob"}),
        (CHANGE_INCIDENT_STATUS, {"status": "resolved", "by": "bob", "message": "memory raised"}),
    ]
    seqs = [opened["seq"]]
    for number, (subject, body) in enumerate(steps, start=2):
        result = await bus.request(subject, {"incident_id": incident_id, **body})
        assert (result["aggregate_id"], result["version"]) == (incident_id, number)
        seqs.append(result["seq"])
    assert seqs == sorted(seqs)

    history = [r.event for r in await bus.read_subject(subjects.incident(incident_id))]
    assert [e.type for e in history] == [
        "IncidentOpened",
        "IncidentAssigned",
        "IncidentNoteAdded",
        "IncidentStatusChanged",
        "IncidentSeverityChanged",
        "IncidentResolved",
    ]
    first, last = history[0], history[-1]
    assert isinstance(first, IncidentOpened) and (first.opened_by, first.alert_id) == ("ann", "")
    assert isinstance(last, IncidentResolved)
    assert (last.previous_status, last.severity, last.message) == (
        "identified",
        "warning",
        "memory raised",
    )


async def test_refusals(bus: EventBus, settings: Settings, start_service: RuntimeFactory) -> None:
    await start_service(build(settings, VigilConfig()))
    with pytest.raises(NotFound):
        await bus.request(CHANGE_INCIDENT_STATUS, {"incident_id": "nope", "status": "identified"})
    with pytest.raises(NotFound):
        await bus.request(ADD_INCIDENT_NOTE, {"incident_id": "a.*", "text": "x"})
    with pytest.raises(InvalidInput) as bad:
        await bus.request(OPEN_INCIDENT, {"title": "x", "severity": "apocalyptic"})
    assert bad.value.field == "severity"

    opened = await bus.request(OPEN_INCIDENT, {"title": "Slow search"})
    incident_id = opened["aggregate_id"]
    with pytest.raises(InvalidTransition):
        await bus.request(
            CHANGE_INCIDENT_STATUS, {"incident_id": incident_id, "status": "investigating"}
        )
    with pytest.raises(InvalidTransition):
        await bus.request(
            CHANGE_INCIDENT_SEVERITY, {"incident_id": incident_id, "severity": "warning"}
        )
    assert len(await bus.read_subject(subjects.incident(incident_id))) == 1
