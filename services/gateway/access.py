"""Who is asking, and what their role lets them do: the one check every route declares.

Authentication (API keys, sessions) lives in the identity section; it installs an
``Authenticator`` on the app, and ``require`` asks it for the caller. Routes declare the
least role they need: ``dependencies=[require("viewer")]`` on a router, ``require("responder")``
or ``require("admin")`` on a write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam

from shared.errors import Forbidden, Unauthenticated

Role = Literal["viewer", "responder", "admin", "ingest"]
ROLES: tuple[Role, ...] = ("viewer", "responder", "admin", "ingest")
# viewer < responder < admin; ingest is a scope of its own (it may only send samples)
RANK: dict[Role, int] = {"viewer": 1, "responder": 2, "admin": 3}


@dataclass(frozen=True)
class Identity:
    """An authenticated caller: a user (by password, then a session) or an API key."""

    kind: Literal["user", "key"]
    name: str
    role: Role
    key_id: str | None = None
    session_id: str | None = None

    @property
    def actor(self) -> str:
        """How timelines and the audit log name this caller."""
        return self.name if self.kind == "user" else f"key:{self.name}"

    def allows(self, needed: Role) -> bool:
        if needed == "ingest":
            return self.role in ("ingest", "admin")
        return self.role != "ingest" and RANK[self.role] >= RANK[needed]


class Authenticator(Protocol):
    async def authenticate(self, request: Request) -> Identity:
        """The caller of ``request``; raises ``Unauthenticated`` (or ``Overloaded``)."""
        ...


def current_identity(request: Request) -> Identity | None:
    """The identity ``require`` found for this request, if it ran."""
    identity = getattr(request.state, "identity", None)
    return identity if isinstance(identity, Identity) else None


def require(role: Role) -> DependsParam:
    """A route dependency: 401 without valid credentials, 403 when the role is too low."""

    async def check(request: Request) -> Identity:
        identity = current_identity(request)
        if identity is None:
            authenticator: Authenticator | None = getattr(request.app.state, "authenticator", None)
            if authenticator is None:
                raise Unauthenticated("authentication is not configured")
            identity = await authenticator.authenticate(request)
            request.state.identity = identity
        if not identity.allows(role):
            raise Forbidden(f"this needs the {role} role; {identity.actor} has {identity.role}")
        return identity

    check.required_role = role  # type: ignore[attr-defined]  # read by the route inventory
    return Depends(check)


def required_role(dependency: object) -> Role | None:
    """The role a ``require`` dependency asks for (None for any other dependency)."""
    role = getattr(dependency, "required_role", None)
    return role if role in ROLES else None
