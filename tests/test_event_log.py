"""The log's guarantees against a real nats-server: idempotent publish, optimistic concurrency."""

from __future__ import annotations

import asyncio

import pytest

from shared import subjects
from shared.bus import EventBus
from shared.errors import Conflict
from shared.events import IncidentNoteAdded, IncidentOpened


def opened(incident_id: str) -> IncidentOpened:
    return IncidentOpened(aggregate_id=incident_id, title="db down", severity="critical")


async def test_same_event_published_twice_is_stored_once(bus: EventBus) -> None:
    event = opened("inc-1")
    first = await bus.publish(subjects.incident("inc-1"), event)
    second = await bus.publish(subjects.incident("inc-1"), event)
    assert first == second
    info = await bus.js.stream_info("INCIDENTS")
    assert info.state.messages == 1


async def test_append_with_stale_expected_sequence_conflicts(bus: EventBus) -> None:
    subject = subjects.incident("inc-2")
    seq = await bus.publish(subject, opened("inc-2"), expected_last_subject_seq=0)
    note = IncidentNoteAdded(aggregate_id="inc-2", version=2, note_id="n1", text="a", author="ann")
    await bus.publish(subject, note, expected_last_subject_seq=seq)
    stale = IncidentNoteAdded(aggregate_id="inc-2", version=2, note_id="n2", text="b", author="bob")
    with pytest.raises(Conflict):
        await bus.publish(subject, stale, expected_last_subject_seq=seq)
    history = await bus.read_subject(subject)
    assert [r.event.type for r in history] == ["IncidentOpened", "IncidentNoteAdded"]


async def test_replay_returns_everything_up_to_now(bus: EventBus) -> None:
    for n in range(5):
        await bus.publish(subjects.incident(f"inc-r{n}"), opened(f"inc-r{n}"))
    seen = [r.event.aggregate_id async for r in bus.replay("INCIDENTS")]
    assert seen == [f"inc-r{n}" for n in range(5)]
    assert [r async for r in bus.replay("ALERTS")] == []


async def test_read_subject_of_unknown_aggregate_is_empty(bus: EventBus) -> None:
    assert await asyncio.wait_for(bus.read_subject(subjects.incident("nope")), 5) == []
