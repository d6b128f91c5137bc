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
from shared.bus import EventBus
from shared.commands import (
    CREATE_SILENCE,
    EXPIRE_SILENCE,
    CommandResult,
    CreateSilence,
    ExpireSilence,
    parse_command,
)
from shared.errors import Conflict, InvalidInput, InvalidTransition, NotFound
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

CONFLICT_ATTEMPTS = 5
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


class SilenceBook:
    """Every silence, as the log has it; the alerts service's one writer of SILENCES."""

    def __init__(self, bus: Callable[[], EventBus], clock: Clock = utcnow):
        self._bus = bus
        self.clock = clock
        self.silences: dict[str, Silence] = {}
        self.position = 0
        self.lock = asyncio.Lock()
        self.on_change: ChangeHook = _unchanged

    # --- state ----------------------------------------------------------------

    def apply(self, event: Event, seq: int) -> None:
        if not isinstance(event, SilenceEvent):
            return
        folded = fold(self.silences.get(event.aggregate_id), event, seq)
        if folded is not None:
            self.silences[event.aggregate_id] = folded
        self.position = max(self.position, seq)

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
            for _ in range(CONFLICT_ATTEMPTS):
                try:
                    result, changed = await self._create(command, key, self.clock())
                except Conflict:
                    continue
                break
            else:
                raise Conflict("the silence kept changing; try again")
        if changed:
            await self._changed()
        return result.model_dump()

    async def expire(self, body: dict[str, Any]) -> dict[str, Any]:
        """End a silence now; one already ended is refused, as Alertmanager does."""
        command = parse_command(ExpireSilence, body)
        async with self.lock:
            for _ in range(CONFLICT_ATTEMPTS):
                now = self.clock()
                silence = self._existing(command.silence_id, "silence_id")
                if silence.state(now) == "expired":
                    raise InvalidTransition(
                        f"silence_id: silence {silence.id} already expired", field="silence_id"
                    )
                try:
                    seq = await self._append(self._expired(silence, command.by, now))
                except Conflict:
                    continue
                break
            else:
                raise Conflict(f"silence {command.silence_id} kept changing; try again")
        await self._changed()
        return self._result(command.silence_id, seq).model_dump()

    def register(self, runtime: ServiceRuntime) -> None:
        runtime.on_start(self.load)
        runtime.respond(CREATE_SILENCE, self.create)
        runtime.respond(EXPIRE_SILENCE, self.expire)

    # --- deciding -----------------------------------------------------------------

    async def _create(
        self, command: CreateSilence, key: str, now: datetime
    ) -> tuple[CommandResult, bool]:
        """(the result, whether anything changed)."""
        if not command.id:
            return await self._make(command, derived_id("silence", key), now)
        current = self._existing(command.id, "id")
        if can_update(current, command, now):
            starts_at = (command.starts_at or current.starts_at).astimezone(UTC)
            ends_at = command.ends_at.astimezone(UTC)
            check_times(starts_at, ends_at, now)
            wanted = (starts_at, ends_at, command.created_by, command.comment)
            if wanted == (current.starts_at, current.ends_at, current.created_by, current.comment):
                return self._result(current.id, current.last_seq), False
            version = current.version + 1
            event = SilenceUpdated(
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
            return self._result(current.id, await self._append(event)), True
        # a change Alertmanager cannot make in place: a new silence replaces this one
        return await self._make(command, derived_id("silence", current.id, key), now, current)

    async def _make(
        self, command: CreateSilence, seed: str, now: datetime, replaced: Silence | None = None
    ) -> tuple[CommandResult, bool]:
        silence_id = seed
        for _ in range(100):
            made = self.silences.get(silence_id)
            if made is None:
                break
            if now - made.created_at <= RETRY_WINDOW:
                return self._result(made.id, made.last_seq), False  # a retry
            silence_id = derived_id("silence", seed, silence_id)  # the same request, later
        starts_at = max(command.starts_at or now, now).astimezone(UTC)
        check_times(command.starts_at or now, command.ends_at, now)
        if replaced is not None and replaced.state(now) != "expired":
            await self._append(self._expired(replaced, command.by, now))
        event = SilenceCreated(
            id=derived_id("silence-created", silence_id),
            aggregate_id=silence_id,
            version=1,
            time=now,
            matchers=command.matchers,
            starts_at=starts_at,
            ends_at=command.ends_at.astimezone(UTC),
            created_by=command.created_by,
            comment=command.comment,
            by=command.by,
        )
        return self._result(silence_id, await self._append(event)), True

    def _expired(self, silence: Silence, by: str, now: datetime) -> SilenceExpired:
        version = silence.version + 1
        return SilenceExpired(
            id=derived_id("silence-expired", silence.id, version),
            aggregate_id=silence.id,
            version=version,
            time=now,
            by=by,
        )

    def _existing(self, silence_id: str, field: str) -> Silence:
        silence = self.silences.get(silence_id)
        if silence is None:
            raise NotFound(f"{field}: no silence {silence_id!r}", field=field)
        return silence

    def _result(self, silence_id: str, seq: int) -> CommandResult:
        silence = self.silences[silence_id]
        return CommandResult(
            aggregate_id=silence_id, version=silence.version, seq=seq, stream=SILENCES.name
        )

    # --- the log ------------------------------------------------------------------

    async def _append(self, event: SilenceEvent) -> int:
        """Publish with the silence's expected sequence, then apply; a clash reloads the
        silence from the log and raises Conflict for the caller to decide again."""
        current = self.silences.get(event.aggregate_id)
        expected = current.last_seq if current is not None else 0
        subject = subjects.silence(event.aggregate_id)
        try:
            seq = await self._bus().publish(subject, event, expected)
        except Conflict:
            log.info("silence changed concurrently; reloading", extra={"subject": subject})
            await self._reload(event.aggregate_id)
            raise
        self.apply(event, seq)
        log.info(
            "silence event recorded",
            extra={
                "event_id": event.id,
                "event_type": event.type,
                "silence_id": event.aggregate_id,
                "version": event.version,
                "stream_seq": seq,
            },
        )
        return seq

    async def _reload(self, silence_id: str) -> None:
        folded: Silence | None = None
        for recorded in await self._bus().read_subject(subjects.silence(silence_id)):
            folded = fold(folded, recorded.event, recorded.seq)
        if folded is None:
            self.silences.pop(silence_id, None)
        else:
            self.silences[silence_id] = folded

    async def _changed(self) -> None:
        try:
            await self.on_change()
        except Exception:
            log.exception("reacting to a silence change failed")
