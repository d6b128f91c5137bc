"""Users, API keys and browser sessions: the gateway appends them to IDENTITY and projects them.

Only hashes travel: a password as its argon2id hash, an API key and a session token as
their SHA-256 (both are random and high-entropy, so a fast hash is enough).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.events.base import Event

UserRole = Literal["viewer", "responder", "admin"]
KeyRole = Literal["viewer", "responder", "admin", "ingest"]


class UserCreated(Event):
    name: str
    role: UserRole
    password_hash: str = Field(description="argon2id hash of the password")
    by: str = Field(description="Who created the user (an identity's actor, or the CLI)")


class UserUpdated(Event):
    """A role or a password changed; a field left None did not."""

    name: str
    role: UserRole | None = None
    password_hash: str | None = None
    by: str


class UserRemoved(Event):
    name: str
    by: str


class ApiKeyCreated(Event):
    key_id: str
    name: str
    role: KeyRole
    prefix: str = Field(description="The visible start of the key, to recognise it")
    key_hash: str = Field(description="SHA-256 of the whole key, hex")
    expires_at: datetime | None = None
    by: str


class ApiKeyRevoked(Event):
    key_id: str
    by: str


class SessionStarted(Event):
    session_id: str
    user: str
    token_hash: str = Field(description="SHA-256 of the session cookie's value, hex")
    expires_at: datetime
    client: str = ""


class SessionEnded(Event):
    session_id: str
    user: str
    reason: Literal["logout", "user removed", "password changed", "limit"] = "logout"


IdentityEvent = (
    UserCreated
    | UserUpdated
    | UserRemoved
    | ApiKeyCreated
    | ApiKeyRevoked
    | SessionStarted
    | SessionEnded
)
