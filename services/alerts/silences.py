"""Silences: folded from the SILENCES stream, changed by the commands the alerts service
answers (``vigil.cmd.silences.create|expire``), with Alertmanager's semantics.

The alerts service is the one writer. Each silence is an aggregate on its own subject;
every append names the subject sequence it decided on, so a clash reloads the silence and
decides again. Ids and event ids are derived from the request (or its idempotency key),
so a command retried within ``RETRY_WINDOW`` answers the silence made the first time
instead of making a second. The suppression engine asks ``active`` for an alert's labels
and ``next_change`` for its timer; ``on_change`` tells it that a silence changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from shared import subjects
from shared.aggregate import AggregateLog, BookMemory, Outcome, Snapshot
from shared.bus import EventBus
from shared.commands import (
    CREATE_SILENCE,
    EXPIRE_SILENCE,
    CommandResult,
    CreateSilence,
    ExpireSilence,
    parse_command,
)
from shared.errors import InvalidInput, InvalidTransition, NotFound
from shared.events import (
    Event,
    SilenceCreated,
    SilenceEvent,
    SilenceExpired,
    SilenceMatcher,
    SilenceUpdated,
    SuppressionRef,
    derived_id,
    utcnow,
)
from shared.matchers import EVERYTHING, Matcher, MatcherError, matches_everything
from shared.runtime import ServiceRuntime
from shared.streams import SILENCES

log = logging.getLogger(__name__)

# a request seen again within this long is a retry: it answers the silence it made
RETRY_WINDOW = timedelta(minutes=10)
SilenceState = Literal["pending", "active", "expired"]
Clock = Callable[[], datetime]
ChangeHook = Callable[[], Awaitable[None]]


async def _unchanged() -> None:
    return None


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[SilenceMatcher, ...]
    compiled: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime
    updated_at: datetime
    version: int
    last_seq: int

    def state(self, now: datetime) -> SilenceState:
        if now >= self.ends_at:
            return "expired"
        return "pending" if now < self.starts_at else "active"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.compiled)

    def ref(self) -> SuppressionRef:
        detail = f"{self.comment} (by {self.created_by})" if self.comment else self.created_by
        return SuppressionRef(kind="silence", id=self.id, detail=detail, until=self.ends_at)


def compile_matchers(matchers: list[SilenceMatcher]) -> tuple[Matcher, ...]:
    """The matchers in use; raises InvalidInput naming ``matchers[i].<part>``."""
    compiled = []
    for index, m in enumerate(matchers):
        try:
            compiled.append(Matcher.of(m.name, m.value, m.is_regex, m.is_equal))
        except MatcherError as exc:
            field = f"matchers[{index}].{exc.part or 'value'}"
            raise InvalidInput(f"{field}: {exc.message}", field=field) from None
    if matches_everything(compiled):
        raise InvalidInput(f"matchers: {EVERYTHING}", field="matchers")
    return tuple(compiled)


def check_times(starts_at: datetime, ends_at: datetime, now: datetime) -> None:
    """Alertmanager's rules: the end after the start, and not past."""
    if ends_at <= starts_at:
        raise InvalidInput("endsAt: must be after startsAt", field="endsAt")
    if ends_at <= now:
        raise InvalidInput(
            f"endsAt: {ends_at.isoformat()} is not in the future; a silence must end later "
            "than now",
            field="endsAt",
        )


def fold(current: Silence | None, event: Event, seq: int) -> Silence | None:
    """One event applied to a silence (None before its first)."""
    if isinstance(event, SilenceCreated):
        try:
            compiled = tuple(
                Matcher.of(m.name, m.value, m.is_regex, m.is_equal) for m in event.matchers
            )
        except MatcherError as exc:
            log.warning(
                "a silence's matchers cannot be used; it is left out",
                extra={"silence_id": event.aggregate_id, "error": exc.message},
            )
            return None
        return Silence(
            id=event.aggregate_id,
            matchers=tuple(event.matchers),
            compiled=compiled,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            created_by=event.created_by,
            comment=event.comment,
            created_at=event.time,
            updated_at=event.time,
            version=event.version,
            last_seq=seq,
        )
    if current is None:
        return None
    if isinstance(event, SilenceUpdated):
        return replace(
            current,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            created_by=event.created_by,
            comment=event.comment,
            updated_at=event.time,
            version=event.version,
            last_seq=seq,
        )
    if isinstance(event, SilenceExpired):
        return replace(
            current,
            starts_at=min(current.starts_at, event.time),
            ends_at=min(current.ends_at, event.time),
            updated_at=event.time,
            version=event.version,
            last_seq=seq,
        )
    return current


def same_matchers(a: tuple[SilenceMatcher, ...], b: list[SilenceMatcher]) -> bool:
    def key(m: SilenceMatcher) -> tuple[str, str, bool, bool]:
        return (m.name, m.value, m.is_regex, m.is_equal)

    return sorted(map(key, a)) == sorted(map(key, b))


def can_update(current: Silence, command: CreateSilence, now: datetime) -> bool:
    """Alertmanager's rule for changing a silence in place rather than replacing it."""
    if not same_matchers(current.matchers, command.matchers):
        return False
    starts_at = command.starts_at or current.starts_at
    state = current.state(now)
    if state == "active":
        return starts_at == current.starts_at
    if state == "pending":
        return starts_at >= now
    return False


def request_key(command: CreateSilence) -> str:
    """What makes two requests the same one: the idempotency key, or else everything sent."""
    if command.request_id:
        return command.request_id
    sent = command.model_dump(mode="json", exclude={"request_id"})
    return derived_id("silence-request", orjson.dumps(sent, option=orjson.OPT_SORT_KEYS).decode())


class _Replace(Exception):
    """The change cannot be made in place: a new silence replaces this one."""

    def __init__(self, current: Silence):
        super().__init__(current.id)
        self.current = current


def _evolve(state: Silence | None, event: Event) -> Silence | None:
    # the sequence is the snapshot's; the book folds the event again with it
    return fold(state, event, 0)


class SilenceBook:
    """Every silence, as the log has it; the alerts service's one writer of SILENCES.

    Changes go through the shared aggregate loop (``shared.aggregate``): this book is its
    memory, so a command decides on what the book holds and a clash reloads the silence.
    """

    def __init__(self, bus: Callable[[], EventBus], clock: Clock = utcnow):
        self._bus = bus
        self.clock = clock
        self.silences: dict[str, Silence] = {}
        self.position = 0
        self.lock = asyncio.Lock()  # a change may touch two silences: one change at a time
        self.on_change: ChangeHook = _unchanged
        self.log: AggregateLog[Silence | None] = AggregateLog(
            bus,
            subjects.silence,
            None,
            _evolve,
            noun="silence",
            memory=BookMemory(self._recall, self._forget, self.apply),
        )

    # --- state ----------------------------------------------------------------

    def apply(self, event: Event, seq: int) -> None:
        if not isinstance(event, SilenceEvent):
            return
        folded = fold(self.silences.get(event.aggregate_id), event, seq)
        if folded is not None:
            self.silences[event.aggregate_id] = folded
        self.position = max(self.position, seq)

    def _recall(self, silence_id: str) -> Snapshot[Silence | None]:
        # the book holds every silence since ``load``: one it lacks has no events
        silence = self.silences.get(silence_id)
        return Snapshot(silence, silence.last_seq if silence is not None else 0)

    def _forget(self, silence_id: str) -> None:
        self.silences.pop(silence_id, None)

    async def load(self) -> None:
        """Every silence from the whole SILENCES stream, so they survive a restart."""
        silences: dict[str, Silence] = {}
        count = 0
        async for recorded in self._bus().replay(SILENCES.name):
            event = recorded.event
            if isinstance(event, SilenceEvent):
                folded = fold(silences.get(event.aggregate_id), event, recorded.seq)
                if folded is not None:
                    silences[event.aggregate_id] = folded
                count += 1
                self.position = max(self.position, recorded.seq)
        async with self.lock:
            self.silences = silences
        now = self.clock()
        log.info(
            "silences loaded",
            extra={
                "events": count,
                "silences": len(silences),
                "in_force": sum(s.state(now) != "expired" for s in silences.values()),
            },
        )

    def get(self, silence_id: str) -> Silence | None:
        return self.silences.get(silence_id)

    # --- what the suppression engine asks --------------------------------------

    def active(self, labels: Mapping[str, str], now: datetime) -> list[SuppressionRef]:
        """The silences in force at ``now`` that match ``labels``, by id."""
        found = [
            s.ref()
            for s in self.silences.values()
            if s.starts_at <= now < s.ends_at and s.matches(labels)
        ]
        return sorted(found, key=lambda ref: ref.id)

    def next_change(self, now: datetime) -> datetime | None:
        """The next time a silence starts or ends by itself, after ``now``."""
        upcoming = [
            s.starts_at if s.starts_at > now else s.ends_at
            for s in self.silences.values()
            if s.ends_at > now
        ]
        return min(upcoming, default=None)

    # --- commands ---------------------------------------------------------------

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """A new silence, or (with ``id``) a change to one, as Alertmanager's POST does."""
        command = parse_command(CreateSilence, body, indexed=True)
        compile_matchers(command.matchers)
        if command.id and subjects.token(command.id) != command.id:
            raise NotFound(f"id: no silence {command.id!r}", field="id")
        key = request_key(command)
        async with self.lock:
            now = self.clock()
            if not command.id:
                result, changed = await self._make(command, derived_id("silence", key), now)
            else:
                try:
                    outcome = await self.log.execute(
                        command.id, lambda current: self._updated(current, command, key, now)
                    )
                except _Replace as replace:
                    # as Alertmanager: the old silence is expired, a new one made
                    seed = derived_id("silence", replace.current.id, key)
                    result, changed = await self._make(command, seed, now, replace.current)
                else:
                    result, changed = self._result(command.id, outcome), bool(outcome.appended)
        if changed:
            await self._changed()
        return result.model_dump()

    async def expire(self, body: dict[str, Any]) -> dict[str, Any]:
        """End a silence now; one already ended is refused, as Alertmanager does."""
        command = parse_command(ExpireSilence, body)
        async with self.lock:
            now = self.clock()
            outcome = await self.log.execute(
                command.silence_id,
                lambda current: self._expiry(command.silence_id, current, command.by, now),
            )
        await self._changed()
        return self._result(command.silence_id, outcome).model_dump()

    def register(self, runtime: ServiceRuntime) -> None:
        runtime.on_start(self.load)
        runtime.respond(CREATE_SILENCE, self.create)
        runtime.respond(EXPIRE_SILENCE, self.expire)

    # --- deciding -----------------------------------------------------------------

    def _updated(
        self, current: Silence | None, command: CreateSilence, key: str, now: datetime
    ) -> list[Event]:
        if current is None:
            raise NotFound(f"id: no silence {command.id!r}", field="id")
        if not can_update(current, command, now):
            raise _Replace(current)
        starts_at = (command.starts_at or current.starts_at).astimezone(UTC)
        ends_at = command.ends_at.astimezone(UTC)
        check_times(starts_at, ends_at, now)
        wanted = (starts_at, ends_at, command.created_by, command.comment)
        if wanted == (current.starts_at, current.ends_at, current.created_by, current.comment):
            return []
        version = current.version + 1
        return [
            SilenceUpdated(
                id=derived_id("silence-updated", current.id, version, key),
                aggregate_id=current.id,
                version=version,
                time=now,
                starts_at=starts_at,
                ends_at=ends_at,
                created_by=command.created_by,
                comment=command.comment,
                by=command.by,
            )
        ]

    async def _make(
        self, command: CreateSilence, seed: str, now: datetime, replaced: Silence | None = None
    ) -> tuple[CommandResult, bool]:
        """A new silence under an id derived from ``seed``: the same request again within
        ``RETRY_WINDOW`` answers the silence it made; later, it makes another."""
        silence_id = seed
        for _ in range(100):
            made = self.silences.get(silence_id)
            if made is None:
                break
            if now - made.created_at <= RETRY_WINDOW:
                return self._result(made.id, None), False
            silence_id = derived_id("silence", seed, silence_id)
        check_times(command.starts_at or now, command.ends_at, now)
        if replaced is not None:
            await self.log.execute(
                replaced.id,
                lambda current: self._expiry(replaced.id, current, command.by, now, quiet=True),
            )
        created = SilenceCreated(
            id=derived_id("silence-created", silence_id),
            aggregate_id=silence_id,
            version=1,
            time=now,
            matchers=command.matchers,
            starts_at=max(command.starts_at or now, now).astimezone(UTC),
            ends_at=command.ends_at.astimezone(UTC),
            created_by=command.created_by,
            comment=command.comment,
            by=command.by,
        )
        # made meanwhile under this id: by this same request, so nothing to add
        outcome = await self.log.execute(
            silence_id, lambda current: [created] if current is None else []
        )
        return self._result(silence_id, outcome), bool(outcome.appended)

    def _expiry(
        self, silence_id: str, current: Silence | None, by: str, now: datetime, quiet: bool = False
    ) -> list[Event]:
        """Expire now; ``quiet``: one gone or ended already needs nothing (a replacement)."""
        if current is None or current.state(now) == "expired":
            if quiet:
                return []
            if current is None:
                raise NotFound(f"silence_id: no silence {silence_id!r}", field="silence_id")
            raise InvalidTransition(
                f"silence_id: silence {silence_id} already expired", field="silence_id"
            )
        version = current.version + 1
        return [
            SilenceExpired(
                id=derived_id("silence-expired", silence_id, version),
                aggregate_id=silence_id,
                version=version,
                time=now,
                by=by,
            )
        ]

    def _result(self, silence_id: str, outcome: Outcome[Silence | None] | None) -> CommandResult:
        """The silence as the book has it; the sequence of the last event this command
        appended (or the silence's last, when it appended none)."""
        silence = self.silences[silence_id]
        seq = outcome.last_seq if outcome is not None else silence.last_seq
        return CommandResult(
            aggregate_id=silence_id, version=silence.version, seq=seq, stream=SILENCES.name
        )

    async def _changed(self) -> None:
        try:
            await self.on_change()
        except Exception:
            log.exception("reacting to a silence change failed")
