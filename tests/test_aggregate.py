"""The shared load, decide, append loop against a real nats-server.

The aggregate here is a notebook: notes on one subject, each a numbered IncidentNoteAdded,
its state the texts in order. Its decisions are what every real aggregate's are: pure
functions of the state, returning the events to append.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from nats.aio.client import Client

from shared import subjects
from shared.aggregate import AggregateLog, Memory, Outcome, Snapshots
from shared.bus import EventBus, Recorded
from shared.configbook import CONTACTS
from shared.configowner import ConfigOwner
from shared.errors import Conflict
from shared.events import ContactUpdated, Event, IncidentNoteAdded, derived_id
from shared.pagingconfig import ContactConfig, ContactMethod

KEY = "notebook"
Notes = tuple[str, ...]


def note(notes: Notes, text: str) -> IncidentNoteAdded:
    version = len(notes) + 1
    return IncidentNoteAdded(
        id=derived_id("note", KEY, version, text),
        aggregate_id=KEY,
        version=version,
        note_id=f"n{version}",
        text=text,
        author="ann",
    )


def write(*texts: str) -> Callable[[Notes], list[Event]]:
    """The decision to add ``texts`` in order; nothing for those already written."""

    def decide(notes: Notes) -> list[Event]:
        events: list[Event] = []
        for text in texts:
            if text not in notes:
                events.append(note(notes, text))
                notes = (*notes, text)
        return events

    return decide


def evolve(notes: Notes, event: Event) -> Notes:
    return (*notes, event.text) if isinstance(event, IncidentNoteAdded) else notes


class WatchedBus(EventBus):
    """The real bus, counting reads and appends; the first ``gated`` reads wait for each
    other, so that many writers decide on the same state before any of them appends."""

    def __init__(self, nc: Client, gated: int = 0):
        super().__init__(nc)
        self.reads = 0
        self.appends = 0
        self.barrier = asyncio.Barrier(gated) if gated else None
        self.gated = gated

    async def read_subject(self, subject: str) -> list[Recorded]:
        history = await super().read_subject(subject)
        self.reads += 1
        if self.barrier is not None and self.reads <= self.gated:
            await self.barrier.wait()
        return history

    async def publish(
        self,
        subject: str,
        event: Event,
        expected_last_subject_seq: int | None = None,
        timeout: float | None = None,
    ) -> int:
        self.appends += 1
        return await super().publish(subject, event, expected_last_subject_seq, timeout)


class InterloperBus(WatchedBus):
    """Another writer appends to the subject just before each of the next ``times``
    appends after the ``after``-th: the writer always finds the subject moved on."""

    def __init__(self, nc: Client, times: int, after: int = 0):
        super().__init__(nc)
        self.times = times
        self.after = after
        self.interloped = 0

    async def publish(
        self,
        subject: str,
        event: Event,
        expected_last_subject_seq: int | None = None,
        timeout: float | None = None,
    ) -> int:
        if self.appends >= self.after and self.interloped < self.times:
            self.interloped += 1
            notes = tuple(evolve_all(await EventBus.read_subject(self, subject)))
            await EventBus.publish(self, subject, note(notes, f"interloper {self.interloped}"))
        return await super().publish(subject, event, expected_last_subject_seq, timeout)


def evolve_all(history: list[Recorded]) -> Notes:
    notes: Notes = ()
    for recorded in history:
        notes = evolve(notes, recorded.event)
    return notes


def notebook(
    bus: EventBus, attempts: int = 5, memory: Memory[Notes] | None = None
) -> AggregateLog[Notes]:
    return AggregateLog(
        lambda: bus,
        subjects.incident,
        (),
        evolve,
        noun="notebook",
        attempts=attempts,
        memory=memory,
    )


def text_of(recorded: Recorded) -> str:
    assert isinstance(recorded.event, IncidentNoteAdded)
    return recorded.event.text


async def stored(bus: EventBus) -> list[IncidentNoteAdded]:
    events = [r.event for r in await bus.read_subject(subjects.incident(KEY))]
    assert all(isinstance(e, IncidentNoteAdded) for e in events)
    return events  # type: ignore[return-value]


async def test_concurrent_writers_conflict_retry_and_all_land_in_one_order(bus: EventBus) -> None:
    # given eight writers that all read the empty notebook before any of them appends
    writers = 8
    watched = WatchedBus(bus.nc, gated=writers)
    log = notebook(watched, attempts=writers)

    # when each adds its own note
    outcomes = await asyncio.gather(*(log.execute(KEY, write(f"note {n}")) for n in range(writers)))

    # then every note is stored once, numbered 1..8 without a gap, each decided on the
    # notes before it, and the losers read the notebook again to get there
    notes = await stored(bus)
    assert sorted(n.text for n in notes) == sorted(f"note {n}" for n in range(writers))
    assert [n.version for n in notes] == list(range(1, writers + 1))
    assert all(len(o.appended) == 1 for o in outcomes)
    assert all(o.state[-1] == text_of(o.appended[0]) for o in outcomes)
    assert {o.appended[0].event.version for o in outcomes} == set(range(1, writers + 1))
    assert watched.reads > writers  # at least one reload after a conflict
    assert (await log.load(KEY)).state == tuple(n.text for n in notes)


async def test_a_writer_that_keeps_losing_gives_up_with_a_clear_conflict(bus: EventBus) -> None:
    # given another writer that appends just before every append of this one
    interloper = InterloperBus(bus.nc, times=100)
    log = notebook(interloper, attempts=3)
    decisions: list[Notes] = []

    def decide(notes: Notes) -> list[Event]:
        decisions.append(notes)
        return write("mine")(notes)

    # when it tries
    with pytest.raises(Conflict) as raised:
        await log.execute(KEY, decide)

    # then it decided three times, each on what the log held then, and says why it stopped
    assert decisions == [(), ("interloper 1",), ("interloper 1", "interloper 2")]
    assert "notebook 'notebook' kept changing" in raised.value.message
    assert "3 attempts" in raised.value.message
    assert "mine" not in [n.text for n in await stored(bus)]


async def test_a_decision_that_changes_nothing_appends_nothing(bus: EventBus) -> None:
    # given a notebook holding one note
    watched = WatchedBus(bus.nc)
    log = notebook(watched)
    first = await log.execute(KEY, write("deploy 1.4.2"))
    appends = watched.appends

    # when the same note is written again (a redelivered command, say)
    again = await log.execute(KEY, write("deploy 1.4.2"))

    # then nothing is appended, and the outcome is the notebook as it stands
    assert watched.appends == appends
    assert again == Outcome(first.snapshot, ())
    assert [n.text for n in await stored(bus)] == ["deploy 1.4.2"]


async def test_several_events_are_appended_in_order_each_after_the_one_before(
    bus: EventBus,
) -> None:
    watched = WatchedBus(bus.nc)
    log = notebook(watched)

    outcome = await log.execute(KEY, write("paged", "acknowledged", "resolved"))

    # each append expects the one before it: no clash with itself, one append per event
    assert watched.appends == 3
    assert [text_of(r) for r in outcome.appended] == ["paged", "acknowledged", "resolved"]
    notes = await stored(bus)
    assert [(n.version, n.text) for n in notes] == [
        (1, "paged"),
        (2, "acknowledged"),
        (3, "resolved"),
    ]
    assert [r.seq for r in outcome.appended] == sorted(r.seq for r in outcome.appended)
    assert outcome.state == ("paged", "acknowledged", "resolved")
    assert outcome.last_seq == outcome.appended[-1].seq


async def test_a_clash_midway_decides_the_rest_again_on_what_is_there(bus: EventBus) -> None:
    # given another writer that gets in once, after this one's first event
    interloper = InterloperBus(bus.nc, times=1, after=1)
    log = notebook(interloper)

    # when three events are decided
    outcome = await log.execute(KEY, write("paged", "acknowledged", "resolved"))

    # then the first stays, the rest follow the other writer's, none twice
    assert [n.text for n in await stored(bus)] == [
        "paged",
        "interloper 1",
        "acknowledged",
        "resolved",
    ]
    assert [r.event.version for r in outcome.appended] == [1, 3, 4]


async def test_a_hot_aggregate_is_decided_from_memory_and_a_stale_memory_is_corrected(
    bus: EventBus,
) -> None:
    # given a notebook kept in memory after its first change
    watched = WatchedBus(bus.nc)
    log = notebook(watched, memory=Snapshots[Notes](limit=2))
    await log.execute(KEY, write("one"))
    reads = watched.reads

    # when it changes again
    await log.execute(KEY, write("two"))

    # then the log was not read for it
    assert watched.reads == reads

    # and when another process appends behind the memory's back
    other = notebook(bus)
    await other.execute(KEY, write("three"))
    outcome = await log.execute(KEY, write("four"))

    # then the stale decision conflicts, the notebook is read again, and nothing is lost
    assert watched.reads == reads + 1
    assert outcome.state == ("one", "two", "three", "four")
    assert [n.version for n in await stored(bus)] == [1, 2, 3, 4]


async def test_what_a_writer_stamps_on_the_way_is_what_is_stored_folded_and_remembered(
    bus: EventBus,
) -> None:
    # given a writer that stamps each note's author as it appends, after a clash midway
    interloper = InterloperBus(bus.nc, times=1, after=1)
    memory = Snapshots[Notes]()
    log = AggregateLog(
        lambda: interloper,
        subjects.incident,
        (),
        evolve,
        noun="notebook",
        memory=memory,
        prepare=lambda event: event.model_copy(update={"author": "stamped"}),
    )

    # when two notes are written
    outcome = await log.execute(KEY, write("paged", "resolved"))

    # then each stored note is the stamped one, and so is what the outcome and memory hold
    assert [(n.text, n.author) for n in await stored(bus)] == [
        ("paged", "stamped"),
        ("interloper 1", "ann"),
        ("resolved", "stamped"),
    ]
    assert [r.event for r in outcome.appended] == [
        n for n in await stored(bus) if n.author == "stamped"
    ]
    assert outcome.state == ("paged", "interloper 1", "resolved")
    assert memory.recall(KEY) == outcome.snapshot


def contact(channel: str) -> ContactConfig:
    return ContactConfig(name="ann", methods=[ContactMethod(channel=channel)])


async def test_an_owner_whose_book_is_stale_decides_again_on_the_log(bus: EventBus) -> None:
    # given two processes owning contacts, both having loaded ann
    live: list[list[ContactConfig]] = []

    async def applied(items: list[ContactConfig]) -> None:
        live.append(items)

    first = ConfigOwner(CONTACTS, lambda: bus, [], "", applied)
    second = ConfigOwner(CONTACTS, lambda: bus, [], "", applied)
    await first.start()
    await first.create(contact("email"), by="ann")
    await second.start()

    # when the first changes her and then the second, from what it loaded, too
    await first.update("ann", contact("slack"), by="ann")
    result = await second.update("ann", contact("pager"), by="bob")

    # then the second's change follows the first's instead of replacing it unseen
    history = await bus.read_subject(CONTACTS.subject("ann"))
    assert [r.event.version for r in history] == [1, 2, 3]
    last = history[-1]
    assert isinstance(last.event, ContactUpdated) and last.event.by == "bob"
    assert (result.version, result.seq) == (3, last.seq)
    assert second.current() == [contact("pager")] == live[-1]

    # and when the first deletes her, and the second, not knowing, deletes her too
    await first.delete("ann", by="ann")
    await second.delete("ann", by="bob")

    # then one deletion is stored and the second's book learned it from the log
    assert len(await bus.read_subject(CONTACTS.subject("ann"))) == 4
    assert second.current() == []
