"""Request and response bodies of the identity routes. Hashes never appear in a response."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.gateway.common.schemas import DateTimeIn
from services.gateway.identity.credentials import (
    MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
    password_problem,
)
from services.gateway.identity.ledger import (
    MAX_KEY_NAME_CHARS,
    USER_NAME_PATTERN,
    key_name_problem,
)

UserRoleName = Literal["viewer", "responder", "admin"]
KeyRoleName = Literal["viewer", "responder", "admin", "ingest"]

UserName = Field(
    min_length=1,
    max_length=64,
    pattern=USER_NAME_PATTERN,
    description="1 to 64 letters, digits or . _ @ + -; unique regardless of case",
)


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _password(value: str) -> str:
    problem = password_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class LoginBody(StrictBody):
    name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_CHARS)


class SetupBody(StrictBody):
    token: str = Field(min_length=1, max_length=200, description="The setup token printed at start")
    name: str = UserName
    password: str = Field(
        min_length=MIN_PASSWORD_CHARS,
        max_length=MAX_PASSWORD_CHARS,
        description=f"At least {MIN_PASSWORD_CHARS} characters",
    )

    _check_password = field_validator("password")(_password)


class PasswordChange(StrictBody):
    current_password: str = Field(min_length=1, max_length=MAX_PASSWORD_CHARS)
    new_password: str = Field(description="At least 10 characters")

    _check_password = field_validator("new_password")(_password)


class UserCreate(StrictBody):
    name: str = UserName
    role: UserRoleName = "viewer"
    password: str = Field(
        min_length=MIN_PASSWORD_CHARS,
        max_length=MAX_PASSWORD_CHARS,
        description=f"At least {MIN_PASSWORD_CHARS} characters",
    )

    _check_password = field_validator("password")(_password)


class UserUpdate(StrictBody):
    role: UserRoleName | None = None
    password: str | None = Field(
        default=None,
        min_length=MIN_PASSWORD_CHARS,
        max_length=MAX_PASSWORD_CHARS,
        description=f"At least {MIN_PASSWORD_CHARS} characters",
    )

    @field_validator("password")
    @classmethod
    def _check(cls, value: str | None) -> str | None:
        return None if value is None else _password(value)


class UserPublic(BaseModel):
    name: str
    role: UserRoleName
    created_at: datetime
    created_by: str
    updated_at: datetime


class KeyCreate(StrictBody):
    name: str = Field(min_length=1, max_length=MAX_KEY_NAME_CHARS)
    role: KeyRoleName = "viewer"
    expires_at: DateTimeIn | None = Field(
        default=None, description="When the key stops working (with a time zone); none: never"
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        problem = key_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class KeyPublic(BaseModel):
    id: str
    name: str
    role: KeyRoleName
    prefix: str = Field(description="The visible start of the key")
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str
    active: bool


class KeyCreated(KeyPublic):
    key: str = Field(description="The key itself: shown this once, stored only as a hash")


class IdentityPublic(BaseModel):
    kind: Literal["user", "key"]
    name: str
    role: KeyRoleName
    actor: str = Field(description="How timelines and the audit log name this identity")
    key_id: str | None = None
    session_expires_at: datetime | None = None


class SessionPublic(IdentityPublic):
    csrf_token: str = Field(
        description="Send it as X-CSRF-Token with every write (also in the vigil_csrf cookie)"
    )


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
