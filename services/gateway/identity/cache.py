"""Who exists, in memory: users, keys by hash, sessions by token hash.

A fold of the IDENTITY stream. The gateway keeps one so authentication costs a hash and a
dictionary lookup, no SQL; the CLI folds the stream into one to list users and keys.
Events are folded once each, in log order (``fold``), whoever delivers them first: the
gateway's projection, or a read of the log to catch up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from shared.events import (
    ApiKeyCreated,
    ApiKeyRevoked,
    Event,
    SessionEnded,
    SessionStarted,
    UserCreated,
    UserRemoved,
    UserUpdated,
)


@dataclass(frozen=True)
class UserRecord:
    name: str
    role: str
    password_hash: str
    created_at: datetime
    created_by: str
    updated_at: datetime


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    name: str
    role: str
    prefix: str
    key_hash: str
    expires_at: datetime | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str = ""

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class SessionRecord:
    session_id: str
    user: str
    token_hash: str
    expires_at: datetime
    started_at: datetime


class IdentityCache:
    def __init__(self) -> None:
        self.users: dict[str, UserRecord] = {}
        self.keys: dict[str, KeyRecord] = {}
        self.keys_by_hash: dict[str, KeyRecord] = {}
        self.sessions: dict[str, SessionRecord] = {}  # by token hash
        self.applied_seq = 0  # the highest stream sequence folded in

    def replace_with(self, other: IdentityCache) -> None:
        self.users, self.keys = other.users, other.keys
        self.keys_by_hash, self.sessions = other.keys_by_hash, other.sessions
        self.applied_seq = other.applied_seq

    def fold(self, seq: int, event: Event | None, *, contiguous: bool = True) -> bool:
        """Apply the event stored at ``seq`` once, in log order. With ``contiguous`` (a
        consumer that may see only some events), False when events before it are missing:
        catch up from the log first. Without (a read of the log itself), any later event."""
        if seq <= self.applied_seq:
            return True
        if contiguous and seq != self.applied_seq + 1:
            return False
        if event is not None:
            self.apply(event)
        self.applied_seq = seq
        return True

    def apply(self, event: Event) -> None:
        if isinstance(event, UserCreated):
            self.users[event.name] = UserRecord(
                event.name, event.role, event.password_hash, event.time, event.by, event.time
            )
        elif isinstance(event, UserUpdated):
            user = self.users.get(event.name)
            if event.password_hash is not None:
                self._end_sessions_of(event.name)
            if user is not None:
                self.users[event.name] = replace(
                    user,
                    role=event.role or user.role,
                    password_hash=event.password_hash or user.password_hash,
                    updated_at=event.time,
                )
        elif isinstance(event, UserRemoved):
            self.users.pop(event.name, None)
            self._end_sessions_of(event.name)
        elif isinstance(event, ApiKeyCreated):
            key = KeyRecord(
                event.key_id,
                event.name,
                event.role,
                event.prefix,
                event.key_hash,
                event.expires_at,
                event.time,
                event.by,
            )
            self.keys[key.key_id] = key
            self.keys_by_hash[key.key_hash] = key
        elif isinstance(event, ApiKeyRevoked):
            known = self.keys.get(event.key_id)
            if known is not None and known.revoked_at is None:
                revoked = replace(known, revoked_at=event.time, revoked_by=event.by)
                self.keys[known.key_id] = revoked
                self.keys_by_hash.pop(known.key_hash, None)
        elif isinstance(event, SessionStarted):
            if event.user in self.users:
                self.sessions[event.token_hash] = SessionRecord(
                    event.session_id, event.user, event.token_hash, event.expires_at, event.time
                )
        elif isinstance(event, SessionEnded):
            for token_hash, session in list(self.sessions.items()):
                if session.session_id == event.session_id:
                    del self.sessions[token_hash]

    def _end_sessions_of(self, user: str) -> None:
        for token_hash, session in list(self.sessions.items()):
            if session.user == user:
                del self.sessions[token_hash]

    def user_named(self, name: str) -> UserRecord | None:
        """Names are unique regardless of case."""
        found = self.users.get(name)
        if found is not None:
            return found
        lowered = name.lower()
        return next((u for u in self.users.values() if u.name.lower() == lowered), None)

    def key_for(self, key_hash: str) -> KeyRecord | None:
        """An unrevoked key by its hash (expiry is the caller's to check: it needs a clock)."""
        return self.keys_by_hash.get(key_hash)

    def session_for(self, token_hash: str) -> tuple[SessionRecord, UserRecord] | None:
        session = self.sessions.get(token_hash)
        if session is None:
            return None
        user = self.users.get(session.user)
        return None if user is None else (session, user)

    def sessions_of(self, user: str) -> list[SessionRecord]:
        return sorted(
            (s for s in self.sessions.values() if s.user == user), key=lambda s: s.started_at
        )

    def has_admin(self, now: datetime) -> bool:
        """Whether anyone can administer: an admin user, or an active admin key."""
        return any(u.role == "admin" for u in self.users.values()) or any(
            k.role == "admin" and k.active(now) for k in self.keys.values()
        )

    def admins_left_without(
        self, now: datetime, user: str | None = None, key_id: str | None = None
    ) -> int:
        users = sum(1 for u in self.users.values() if u.role == "admin" and u.name != user)
        keys = sum(
            1
            for k in self.keys.values()
            if k.role == "admin" and k.active(now) and k.key_id != key_id
        )
        return users + keys
