"""Writing identity to the log: decide from an aggregate's own events, append with its last
sequence expected, so two writers (two gateways, the CLI) cannot both create one name.

Shared by the gateway's API and the ``vigil user|key`` commands; works on an ``EventBus``
alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.gateway.identity.credentials import (
    digest,
    display_prefix,
    key_id_of_value,
    new_key,
    new_session_token,
)
from shared import subjects
from shared.bus import EventBus, Recorded
from shared.errors import Conflict, InvalidInput, NotFound
from shared.events import (
    ApiKeyCreated,
    ApiKeyRevoked,
    Event,
    SessionEnded,
    SessionStarted,
    UserCreated,
    UserRemoved,
    UserUpdated,
    derived_id,
    new_id,
)
from shared.labels import first_unprintable

USER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$"
USER_NAME_RULE = "1 to 64 letters, digits or . _ @ + -, starting with a letter or digit"
MAX_KEY_NAME_CHARS = 100
_USER_NAME = re.compile(USER_NAME_PATTERN)


def user_name_problem(name: str) -> str | None:
    return None if _USER_NAME.match(name) else f"must be {USER_NAME_RULE}"


def key_name_problem(name: str) -> str | None:
    if not name.strip():
        return "must not be empty"
    if len(name) > MAX_KEY_NAME_CHARS:
        return f"must be at most {MAX_KEY_NAME_CHARS} characters"
    bad = first_unprintable(name)
    return None if bad is None else f"must not contain the character U+{ord(bad):04X}"


def user_subject(name: str) -> str:
    """Names are unique regardless of case: ``Alice`` and ``alice`` are one user."""
    return subjects.identity_user(name.lower())


@dataclass(frozen=True)
class Appended:
    event: Event
    seq: int


async def _append(bus: EventBus, subject: str, event: Event, expected: int | None) -> Appended:
    seq = await bus.publish(subject, event, expected_last_subject_seq=expected)
    return Appended(event, seq)


def _current_user(history: list[Recorded]) -> UserCreated | None:
    """The user as created, or None when it does not exist (never, or removed)."""
    created: UserCreated | None = None
    for recorded in history:
        if isinstance(recorded.event, UserCreated):
            created = recorded.event
        elif isinstance(recorded.event, UserRemoved):
            created = None
    return created


async def create_user(bus: EventBus, name: str, role: str, password_hash: str, by: str) -> Appended:
    subject = user_subject(name)
    history = await bus.read_subject(subject)
    existing = _current_user(history)
    if existing is not None:
        raise Conflict(f"name: a user named {existing.name!r} exists", field="name")
    event = UserCreated(
        aggregate_id=name,
        version=len(history) + 1,
        name=name,
        role=role,  # type: ignore[arg-type]
        password_hash=password_hash,
        by=by,
    )
    try:
        return await _append(bus, subject, event, history[-1].seq if history else 0)
    except Conflict:
        raise Conflict(f"name: a user named {name!r} was just created", field="name") from None


async def _user_history(bus: EventBus, name: str) -> tuple[list[Recorded], UserCreated]:
    history = await bus.read_subject(user_subject(name))
    existing = _current_user(history)
    if existing is None:
        raise NotFound(f"name: no user {name!r}", field="name")
    return history, existing


async def update_user(
    bus: EventBus, name: str, by: str, role: str | None = None, password_hash: str | None = None
) -> Appended:
    history, existing = await _user_history(bus, name)
    event = UserUpdated(
        aggregate_id=existing.name,
        version=len(history) + 1,
        name=existing.name,
        role=role,  # type: ignore[arg-type]
        password_hash=password_hash,
        by=by,
    )
    return await _append(bus, user_subject(name), event, history[-1].seq)


async def remove_user(bus: EventBus, name: str, by: str) -> Appended:
    history, existing = await _user_history(bus, name)
    event = UserRemoved(
        aggregate_id=existing.name, version=len(history) + 1, name=existing.name, by=by
    )
    return await _append(bus, user_subject(name), event, history[-1].seq)


@dataclass(frozen=True)
class CreatedKey:
    appended: Appended
    value: str  # shown once, never stored

    @property
    def event(self) -> ApiKeyCreated:
        assert isinstance(self.appended.event, ApiKeyCreated)
        return self.appended.event


async def create_key(
    bus: EventBus, name: str, role: str, by: str, expires_at: datetime | None = None
) -> CreatedKey:
    for _ in range(3):  # a clash of random ids is unlikely; a retry takes a new one
        key_id, value = new_key()
        event = ApiKeyCreated(
            aggregate_id=key_id,
            key_id=key_id,
            name=name,
            role=role,  # type: ignore[arg-type]
            prefix=display_prefix(key_id),
            key_hash=digest(value),
            expires_at=expires_at,
            by=by,
        )
        try:
            return CreatedKey(await _append(bus, subjects.identity_key(key_id), event, 0), value)
        except Conflict:
            continue
    raise Conflict("key_id: could not draw an unused key id; try again")


async def ensure_key(bus: EventBus, value: str, name: str, role: str, by: str) -> Appended | None:
    """Create the key with this exact value unless it ever existed (then None, even if it
    was revoked since: a revoked bootstrap key does not come back on a restart)."""
    key_id = key_id_of_value(value)
    subject = subjects.identity_key(key_id)
    if await bus.read_subject(subject):
        return None
    event = ApiKeyCreated(
        id=derived_id("ensured-key", digest(value)),
        aggregate_id=key_id,
        key_id=key_id,
        name=name,
        role=role,  # type: ignore[arg-type]
        prefix=f"{key_id} ({name})",
        key_hash=digest(value),
        by=by,
    )
    try:
        return await _append(bus, subject, event, 0)
    except Conflict:
        return None  # another gateway created it first


async def revoke_key(bus: EventBus, key_id: str, by: str) -> Appended:
    subject = subjects.identity_key(key_id)
    history = await bus.read_subject(subject)
    if not history or not isinstance(history[0].event, ApiKeyCreated):
        raise NotFound(f"key_id: no key {key_id!r}", field="key_id")
    for recorded in history:
        if isinstance(recorded.event, ApiKeyRevoked):
            return Appended(recorded.event, recorded.seq)  # revoked already: nothing to do
    event = ApiKeyRevoked(aggregate_id=key_id, version=len(history) + 1, key_id=key_id, by=by)
    return await _append(bus, subject, event, history[-1].seq)


@dataclass(frozen=True)
class StartedSession:
    appended: Appended
    token: str  # the cookie's value, never stored

    @property
    def event(self) -> SessionStarted:
        assert isinstance(self.appended.event, SessionStarted)
        return self.appended.event


async def start_session(bus: EventBus, user: str, ttl_s: float, client: str) -> StartedSession:
    session_id = new_id()
    token = new_session_token()
    event = SessionStarted(
        aggregate_id=session_id,
        session_id=session_id,
        user=user,
        token_hash=digest(token),
        expires_at=datetime.now(UTC) + timedelta(seconds=ttl_s),
        client=client,
    )
    return StartedSession(
        await _append(bus, subjects.identity_session(session_id), event, 0), token
    )


async def end_session(bus: EventBus, session_id: str, user: str, reason: str) -> Appended:
    event = SessionEnded(
        aggregate_id=session_id,
        version=2,
        session_id=session_id,
        user=user,
        reason=reason,  # type: ignore[arg-type]
    )
    return await _append(bus, subjects.identity_session(session_id), event, None)


def check_expiry(expires_at: datetime | None, now: datetime) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise InvalidInput(
            "expires_at: must carry a time zone (e.g. 2030-01-01T00:00:00Z)", field="expires_at"
        )
    if expires_at <= now:
        raise InvalidInput("expires_at: must be in the future", field="expires_at")
    return expires_at
