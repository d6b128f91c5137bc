"""Two writers change one incident at once: one wins, the other conflicts, reloads, retries."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client

from services.incidents.domain import OpenIncidentAs, decide
from services.incidents.handlers import AlertIncidents, incident_id_for
from services.incidents.store import IncidentStore
from shared import subjects
from shared.bus import EventBus, Recorded
from shared.commands import AddIncidentNote, AssignIncident, ChangeIncidentStatus
from shared.config import IncidentPolicy
from shared.consumer import Delivery
from shared.errors import InvalidTransition
from shared.events import (
    AlertFired,
    IncidentAssigned,
    IncidentNoteAdded,
    IncidentOpened,
    IncidentStatusChanged,
)

ID = "inc-race"


class LockstepBus(EventBus):
    """The real bus, but the first ``gated`` reads wait for each other: both writers decide
    on the same version before either appends, which forces the race every time."""

    def __init__(self, nc: Client, gated: int):
        super().__init__(nc)
        self.reads = 0
        self.gated = gated
        self.barrier = asyncio.Barrier(gated)

    async def read_subject(self, subject: str) -> list[Recorded]:
        history = await super().read_subject(subject)
        self.reads += 1
        if self.reads <= self.gated:
            await self.barrier.wait()
        return history


@pytest.fixture
async def racing(bus: EventBus) -> tuple[LockstepBus, IncidentStore]:
    lockstep = LockstepBus(bus.nc, gated=2)
    store = IncidentStore(lambda: lockstep)
    opening = OpenIncidentAs(incident_id=ID, title="checkout errors", severity="critical", by="ann")
    await bus.publish(subjects.incident(ID), decide(None, opening)[0], expected_last_subject_seq=0)
    return lockstep, store


async def test_concurrent_writers_lose_no_update(racing: tuple[LockstepBus, IncidentStore]) -> None:
    lockstep, store = racing
    assign = AssignIncident(incident_id=ID, assignee="bob", by="ann")
    note = AddIncidentNote(incident_id=ID, text="rolled back 1.4.2", author="carol")

    results = await asyncio.gather(
        store.execute(ID, lambda incident: decide(incident, assign)),
        store.execute(ID, lambda incident: decide(incident, note)),
    )

    assert sorted(r.version for r in results) == [2, 3]
    assert lockstep.reads == 3  # two decided on version 1; the loser reloaded once
    incident, seq = await store.load(ID)
    assert incident is not None
    assert (incident.version, seq) == (3, max(r.seq for r in results))
    assert incident.assignee == "bob"
    assert [(n.text, n.author) for n in incident.notes] == [("rolled back 1.4.2", "carol")]
    assert {type(e) for e in incident.timeline[1:]} == {IncidentAssigned, IncidentNoteAdded}


async def test_the_loser_decides_again_on_what_the_winner_did(
    racing: tuple[LockstepBus, IncidentStore],
) -> None:
    lockstep, store = racing
    identify = ChangeIncidentStatus(incident_id=ID, status="identified", by="ann")

    outcomes = await asyncio.gather(
        store.execute(ID, lambda incident: decide(incident, identify)),
        store.execute(ID, lambda incident: decide(incident, identify)),
        return_exceptions=True,
    )

    # the same move twice: after reloading, the second writer sees it is already made
    assert sum(isinstance(o, InvalidTransition) for o in outcomes) == 1
    assert lockstep.reads == 3
    incident, _ = await store.load(ID)
    assert incident is not None
    assert [type(e) for e in incident.timeline[1:]] == [IncidentStatusChanged]
    assert incident.status == "identified"


def critical(alert_id: str) -> AlertFired:
    return AlertFired(
        aggregate_id=alert_id,
        rule="HighCPU",
        fingerprint="fp-api-1",
        metric="cpu",
        labels={"host": "api-1"},
        severity="critical",
        value=95.0,
        threshold=90.0,
    )


async def test_two_processes_opening_one_series_incident_make_one(bus: EventBus) -> None:
    # given two incidents processes that both find no incident for the series
    lockstep = LockstepBus(bus.nc, gated=2)
    first, second = (
        AlertIncidents(IncidentStore(lambda: lockstep), IncidentPolicy()) for _ in range(2)
    )
    alerts = critical("alert-a"), critical("alert-b")

    # when each handles a critical alert of it at once
    await asyncio.gather(
        *(
            process.handle(alert, Delivery("ALERTS", subjects.alert(alert.id), n, 1, "c"))
            for n, (process, alert) in enumerate(zip((first, second), alerts, strict=True), 1)
        )
    )

    # then one opens the incident, the other's open clashes and it notes its alert there
    opened = [
        r.event for r in await bus.read_subject(subjects.incident(incident_id_for("fp-api-1", 0)))
    ]
    assert [type(e) for e in opened] == [IncidentOpened, IncidentNoteAdded]
    assert {opened[0].causation_id, opened[1].causation_id} == {a.id for a in alerts}
    assert await bus.read_subject(subjects.incident(incident_id_for("fp-api-1", 1))) == []
