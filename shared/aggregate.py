"""One way to change an aggregate: load its events, fold, decide, append, retry on a clash.

An aggregate is the events on one subject. A writer folds them to the current state,
asks a pure ``decide(state) -> events`` what the command changes, and appends those
events in order, each naming the subject sequence the one before it left. When another
writer appended in between, JetStream refuses the append (Conflict): the writer reads
the subject again and decides again on what is there now, so neither change is lost and
none is made on a stale state. A decision that returns no events (already applied,
nothing to change) appends nothing. Event ids stay the decider's business: one derived
from what caused the command makes a re-run publish the same id, which the stream's
duplicate window stores once. A writer that stamps what it appends (a time from its
clock, reasons computed at that moment) gives ``prepare``: each event passes through it
on its way to the log, and the fold and the memory see the event as stored.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from shared.bus import EventBus, Recorded
from shared.errors import Conflict
from shared.events import Event

log = logging.getLogger(__name__)

S = TypeVar("S")

ATTEMPTS = 5


@dataclass(frozen=True)
class Snapshot(Generic[S]):
    """An aggregate's state and the subject sequence of its last event (0: it has none)."""

    state: S
    last_seq: int = 0


@dataclass(frozen=True)
class Outcome(Generic[S]):
    """What ``execute`` left: the state after it, and the events it appended, in order
    (none when the decision changed nothing)."""

    snapshot: Snapshot[S]
    appended: tuple[Recorded, ...] = ()

    @property
    def state(self) -> S:
        return self.snapshot.state

    @property
    def last_seq(self) -> int:
        return self.snapshot.last_seq


class Memory(Protocol[S]):
    """Where states are kept between commands, so a hot aggregate is not read for each.

    It may hold less than the log (``recall`` answers None and the log is read), never
    something else: it learns every append, and after a Conflict the log's whole
    history of the aggregate.
    """

    def recall(self, key: str) -> Snapshot[S] | None: ...

    def reloaded(self, key: str, history: Sequence[Recorded], snapshot: Snapshot[S]) -> None: ...

    def appended(self, key: str, recorded: Recorded, snapshot: Snapshot[S]) -> None: ...


class NoMemory(Generic[S]):
    """Every command reads its aggregate from the log."""

    def recall(self, key: str) -> Snapshot[S] | None:
        return None

    def reloaded(self, key: str, history: Sequence[Recorded], snapshot: Snapshot[S]) -> None:
        pass

    def appended(self, key: str, recorded: Recorded, snapshot: Snapshot[S]) -> None:
        pass


class Snapshots(Generic[S]):
    """The ``limit`` aggregates used last, as (state, last sequence): hot ones skip the read."""

    def __init__(self, limit: int = 1024):
        self.limit = limit
        self._held: OrderedDict[str, Snapshot[S]] = OrderedDict()

    def recall(self, key: str) -> Snapshot[S] | None:
        snapshot = self._held.get(key)
        if snapshot is not None:
            self._held.move_to_end(key)
        return snapshot

    def reloaded(self, key: str, history: Sequence[Recorded], snapshot: Snapshot[S]) -> None:
        self._keep(key, snapshot)

    def appended(self, key: str, recorded: Recorded, snapshot: Snapshot[S]) -> None:
        self._keep(key, snapshot)

    def _keep(self, key: str, snapshot: Snapshot[S]) -> None:
        self._held[key] = snapshot
        self._held.move_to_end(key)
        while len(self._held) > self.limit:
            self._held.popitem(last=False)


class BookMemory(Generic[S]):
    """A memory that is a read model folding (event, sequence) pairs itself (a catalog,
    a configuration book): it answers from the model and is kept in step with the log."""

    def __init__(
        self,
        recall: Callable[[str], Snapshot[S] | None],
        forget: Callable[[str], None],
        apply: Callable[[Event, int], None],
    ):
        self._recall = recall
        self._forget = forget
        self._apply = apply

    def recall(self, key: str) -> Snapshot[S] | None:
        return self._recall(key)

    def reloaded(self, key: str, history: Sequence[Recorded], snapshot: Snapshot[S]) -> None:
        self._forget(key)
        for recorded in history:
            self._apply(recorded.event, recorded.seq)

    def appended(self, key: str, recorded: Recorded, snapshot: Snapshot[S]) -> None:
        self._apply(recorded.event, recorded.seq)


class AggregateLog(Generic[S]):
    """Aggregates of one kind, each on its own subject ``subject(key)``, whose state is
    ``evolve`` folded over its events from ``initial``."""

    def __init__(
        self,
        bus: Callable[[], EventBus],
        subject: Callable[[str], str],
        initial: S,
        evolve: Callable[[S, Event], S],
        *,
        noun: str,
        attempts: int = ATTEMPTS,
        memory: Memory[S] | None = None,
        prepare: Callable[[Event], Event] | None = None,
    ):
        self._bus = bus
        self.subject = subject
        self.initial = initial
        self.evolve = evolve
        self.noun = noun
        self.attempts = attempts
        self.memory: Memory[S] = memory if memory is not None else NoMemory()
        self.prepare = prepare

    def fold(self, history: Iterable[Recorded]) -> Snapshot[S]:
        snapshot = Snapshot(self.initial)
        for recorded in history:
            snapshot = Snapshot(self.evolve(snapshot.state, recorded.event), recorded.seq)
        return snapshot

    async def load(self, key: str) -> Snapshot[S]:
        """The aggregate as the log holds it now; the memory learns it."""
        history = await self._bus().read_subject(self.subject(key))
        snapshot = self.fold(history)
        self.memory.reloaded(key, history, snapshot)
        return snapshot

    async def current(self, key: str) -> Snapshot[S]:
        """From the memory when it holds the aggregate, else from the log."""
        held = self.memory.recall(key)
        return held if held is not None else await self.load(key)

    async def execute(
        self,
        key: str,
        decide: Callable[[S], Sequence[Event]],
        *,
        known: Snapshot[S] | None = None,
    ) -> Outcome[S]:
        """Decide on the current state and append what it returns, in order; on a
        Conflict read the aggregate again and decide again, ``attempts`` times at most.

        ``known`` is a state the caller has just read: the first decision is made on it.
        Errors the decision raises (not found, invalid transition) go to the caller.
        """
        subject = self.subject(key)
        snapshot = known if known is not None else await self.current(key)
        appended: list[Recorded] = []  # by every attempt: one may clash halfway
        for attempt in range(1, self.attempts + 1):
            try:
                for event in decide(snapshot.state):
                    if self.prepare is not None:
                        event = self.prepare(event)
                    seq = await self._bus().publish(subject, event, snapshot.last_seq)
                    snapshot = Snapshot(self.evolve(snapshot.state, event), seq)
                    recorded = Recorded(event, seq, subject)
                    self.memory.appended(key, recorded, snapshot)
                    appended.append(recorded)
                    _recorded(self.noun, recorded)
            except Conflict:
                log.info(
                    "aggregate changed concurrently; reloading",
                    extra={"aggregate": self.noun, "subject": subject, "attempt": attempt},
                )
                if attempt < self.attempts:
                    snapshot = await self.load(key)
                continue
            return Outcome(snapshot, tuple(appended))
        raise Conflict(
            f"{self.noun} {key!r} kept changing: {self.attempts} attempts in a row met "
            "another writer's change; try again"
        )


def _recorded(noun: str, recorded: Recorded) -> None:
    event = recorded.event
    log.info(
        "aggregate event recorded",
        extra={
            "aggregate": noun,
            "event_id": event.id,
            "event_type": event.type,
            "aggregate_id": event.aggregate_id,
            "version": event.version,
            "subject": recorded.subject,
            "stream_seq": recorded.seq,
            "correlation_id": event.correlation_id,
        },
    )
