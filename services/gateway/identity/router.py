"""Routes of identity: login and sessions, the first administrator, users and API keys.

Every write here goes to the log (IDENTITY) first; the answer waits until this gateway's
cache and read model show it, like every command does.
"""

from __future__ import annotations

import asyncio
import hmac
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from services.gateway.access import Identity, current_identity, require
from services.gateway.identity import ledger, views
from services.gateway.identity.authenticator import CSRF_COOKIE, SESSION_COOKIE
from services.gateway.identity.clients import client_address
from services.gateway.identity.credentials import csrf_token, hash_password, verify_password
from services.gateway.identity.ledger import Appended
from services.gateway.identity.paging import CursorParam, LimitParam
from services.gateway.identity.schemas import (
    IdentityPublic,
    KeyCreate,
    KeyCreated,
    KeyPublic,
    KeyRoleName,
    LoginBody,
    Page,
    PasswordChange,
    SessionPublic,
    SetupBody,
    UserCreate,
    UserPublic,
    UserRoleName,
    UserUpdate,
)
from services.gateway.identity.section import IdentitySection
from shared.errors import Conflict, Forbidden, NotFound, Unauthenticated

PREFIX = "/api/monitoring"
MAX_SESSIONS_PER_USER = 20
PASSWORD_CHECKS_AT_ONCE = 2  # argon2id takes 64 MiB and tens of ms each
PUBLIC: dict[str, Any] = {"security": []}
REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid credentials"},
    403: {"description": "The identity's role does not allow this"},
    429: {"description": "Too many requests from this identity; see Retry-After"},
}
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Done; the read model does not show it yet (see Location)"}
}
_password_checks = asyncio.Semaphore(PASSWORD_CHECKS_AT_ONCE)


async def section_of(request: Request) -> IdentitySection:
    section: IdentitySection = request.app.state.identity
    return section


SectionDep = Annotated[IdentitySection, Depends(section_of)]


async def authenticated(request: Request, section: SectionDep) -> Identity:
    """Any valid identity, whatever its role."""
    identity = current_identity(request)
    if identity is None:
        identity = await section.authenticator.authenticate(request)
        request.state.identity = identity
    return identity


AnyIdentity = Annotated[Identity, Depends(authenticated)]
Admin = Annotated[Identity, require("admin")]


def accepted(appended: Appended, location: str) -> JSONResponse:
    body = {"aggregate_id": appended.event.aggregate_id, "seq": appended.seq}
    return JSONResponse(body, status_code=202, headers={"Location": location})


def user_path(name: str) -> str:
    return f"{PREFIX}/users/{quote(name, safe='')}"


def key_path(key_id: str) -> str:
    return f"{PREFIX}/keys/{quote(key_id, safe='')}"


async def checked_password(password_hash: str | None, password: str) -> bool:
    async with _password_checks:
        return await asyncio.to_thread(verify_password, password_hash, password)


async def hashed(password: str) -> str:
    async with _password_checks:
        return await asyncio.to_thread(hash_password, password)


# --- sessions --------------------------------------------------------------------

auth_router = APIRouter(prefix=f"{PREFIX}/auth", tags=["identity"])


def identity_view(identity: Identity, section: IdentitySection) -> IdentityPublic:
    expires = None
    if identity.session_id is not None:
        found = next(
            (s for s in section.cache.sessions.values() if s.session_id == identity.session_id),
            None,
        )
        expires = found.expires_at if found else None
    return IdentityPublic(
        kind=identity.kind,
        name=identity.name,
        role=identity.role,
        actor=identity.actor,
        key_id=identity.key_id,
        session_expires_at=expires,
    )


async def open_session(
    request: Request, section: IdentitySection, user: str, role: str, status_code: int = 200
) -> JSONResponse:
    bus = section.state.bus()
    started = await ledger.start_session(
        bus, user, section.settings.session_ttl_s, client_address(request)
    )
    await section.written(started.appended)
    for old in section.cache.sessions_of(user)[:-MAX_SESSIONS_PER_USER]:
        await ledger.end_session(bus, old.session_id, user, "limit")
    csrf = csrf_token(started.token)
    body = SessionPublic(
        kind="user",
        name=user,
        role=role,  # type: ignore[arg-type]
        actor=user,
        session_expires_at=started.event.expires_at,
        csrf_token=csrf,
    )
    response = JSONResponse(body.model_dump(mode="json"), status_code=status_code)
    max_age = int(section.settings.session_ttl_s)
    secure = section.secure_cookies
    response.set_cookie(
        SESSION_COOKIE,
        started.token,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=False,
        samesite="strict",
    )
    return response


@auth_router.post(
    "/login",
    response_model=SessionPublic,
    openapi_extra=PUBLIC,
    responses={
        401: {"description": "Wrong name or password"},
        403: {"description": "The request came from a page of another site"},
        429: {"description": "Too many failed logins for this account or address; see Retry-After"},
    },
)
async def login(request: Request, section: SectionDep, body: LoginBody) -> Any:
    """Start a browser session: sets the httpOnly session cookie and the CSRF cookie."""
    section.authenticator.check_origin(request)
    address = client_address(request)
    section.logins.check(body.name, address)
    user = section.cache.user_named(body.name)
    if user is not None:
        request.state.audit_actor = user.name  # a mistyped password never lands in the log
    if not await checked_password(user.password_hash if user else None, body.password):
        section.logins.failed(body.name, address)
        raise Unauthenticated("name or password is wrong")
    section.logins.succeeded(body.name, address)
    return await open_session(request, section, user.name, user.role)  # type: ignore[union-attr]


@auth_router.post("/logout", status_code=204, responses=REFUSALS)
async def logout(section: SectionDep, identity: AnyIdentity) -> Response:
    """End this browser session (an API key has none: nothing happens)."""
    if identity.session_id is not None:
        appended = await ledger.end_session(
            section.state.bus(), identity.session_id, identity.name, "logout"
        )
        await section.written(appended)
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=section.secure_cookies, httponly=True, samesite="strict"
    )
    response.delete_cookie(CSRF_COOKIE, path="/", secure=section.secure_cookies, samesite="strict")
    return response


@auth_router.get("/me", responses=REFUSALS)
async def me(section: SectionDep, identity: AnyIdentity) -> IdentityPublic:
    """Who this request is authenticated as."""
    return identity_view(identity, section)


@auth_router.post(
    "/password",
    response_model=SessionPublic,
    responses={
        **REFUSALS,
        403: {"description": "The current password is wrong, or another site sent this"},
        409: {"description": "An API key has no password"},
        429: {"description": "Too many wrong passwords for this account or address"},
    },
)
async def change_password(
    request: Request, section: SectionDep, identity: AnyIdentity, body: PasswordChange
) -> Any:
    """Change the signed-in user's own password. Every session of the user ends (one
    opened with the old password may be someone else's); this browser gets a new one."""
    if identity.kind != "user":
        raise Conflict("an API key has no password; sign in as a user to change one")
    address = client_address(request)
    section.logins.check(identity.name, address)
    user = section.cache.user_named(identity.name)
    if not await checked_password(user.password_hash if user else None, body.current_password):
        section.logins.failed(identity.name, address)
        raise Forbidden("current_password: not this user's password", field="current_password")
    section.logins.succeeded(identity.name, address)
    appended = await ledger.update_user(
        section.state.bus(),
        identity.name,
        identity.actor,
        password_hash=await hashed(body.new_password),
    )
    await section.written(appended)
    return await open_session(request, section, identity.name, identity.role)


@auth_router.post(
    "/setup",
    status_code=201,
    response_model=SessionPublic,
    openapi_extra=PUBLIC,
    responses={
        401: {"description": "Not the setup token printed at start"},
        409: {"description": "Setup is closed: an administrator exists"},
        429: {"description": "Too many wrong tokens from this address; see Retry-After"},
    },
)
async def setup(request: Request, section: SectionDep, body: SetupBody) -> Any:
    """Create the first administrator with the one-time token printed at start, and log in."""
    section.authenticator.check_origin(request)
    address = client_address(request)
    section.logins.check("(setup)", address)
    expected = section.setup_token
    if expected is None or section.cache.has_admin(datetime.now(UTC)):
        raise Conflict("token: setup is closed: an administrator exists", field="token")
    if not hmac.compare_digest(body.token.encode(), expected.encode()):
        section.logins.failed("(setup)", address)
        raise Unauthenticated("token: not the setup token printed at start", field="token")
    appended = await ledger.create_user(
        section.state.bus(), body.name, "admin", await hashed(body.password), "setup"
    )
    section.setup_token = None
    await section.written(appended)
    request.state.audit_actor = body.name
    return await open_session(request, section, body.name, "admin", status_code=201)


# --- users -------------------------------------------------------------------------

users_router = APIRouter(prefix=f"{PREFIX}/users", tags=["identity"], responses=REFUSALS)


@users_router.get("")
async def list_users(
    section: SectionDep,
    _: Admin,
    role: UserRoleName | None = None,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> Page[UserPublic]:
    return await views.list_users(section.projection.store.engine, role, limit, cursor)


@users_router.post(
    "",
    status_code=201,
    response_model=UserPublic,
    responses={**ACCEPTED, 409: {"description": "A user of that name exists"}},
)
async def create_user(section: SectionDep, identity: Admin, body: UserCreate) -> Any:
    appended = await ledger.create_user(
        section.state.bus(), body.name, body.role, await hashed(body.password), identity.actor
    )
    location = user_path(body.name)
    view = (
        await views.get_user(section.projection.store.engine, body.name)
        if await section.written(appended)
        else None
    )
    if view is None:
        return accepted(appended, location)
    return JSONResponse(
        view.model_dump(mode="json"), status_code=201, headers={"Location": location}
    )


async def _user_or_404(section: IdentitySection, name: str) -> UserPublic:
    known = section.cache.user_named(name)
    view = (
        None if known is None else await views.get_user(section.projection.store.engine, known.name)
    )
    if view is None:
        raise NotFound(f"name: no user {name!r}", field="name")
    return view


@users_router.get("/{name}", responses={404: {"description": "No such user"}})
async def get_user(section: SectionDep, _: Admin, name: str) -> UserPublic:
    return await _user_or_404(section, name)


def _keep_an_admin(section: IdentitySection, user: str) -> None:
    if section.cache.admins_left_without(datetime.now(UTC), user=user) == 0:
        raise Conflict(
            f"name: {user} is the last administrator; make another one first", field="name"
        )


@users_router.put(
    "/{name}",
    response_model=UserPublic,
    responses={
        **ACCEPTED,
        404: {"description": "No such user"},
        409: {"description": "It would leave no administrator"},
    },
)
async def update_user(section: SectionDep, identity: Admin, name: str, body: UserUpdate) -> Any:
    """Change a user's role or password; a new password ends the user's sessions."""
    current = await _user_or_404(section, name)
    if body.role is not None and body.role != "admin" and current.role == "admin":
        _keep_an_admin(section, current.name)
    appended = await ledger.update_user(
        section.state.bus(),
        current.name,
        identity.actor,
        role=body.role,
        password_hash=None if body.password is None else await hashed(body.password),
    )
    if not await section.written(appended):
        return accepted(appended, user_path(current.name))
    return await _user_or_404(section, current.name)


@users_router.delete(
    "/{name}",
    status_code=204,
    responses={
        **ACCEPTED,
        404: {"description": "No such user"},
        409: {"description": "It would leave no administrator"},
    },
)
async def remove_user(section: SectionDep, identity: Admin, name: str) -> Response:
    """Remove a user; their sessions end at once."""
    current = await _user_or_404(section, name)
    if current.role == "admin":
        _keep_an_admin(section, current.name)
    appended = await ledger.remove_user(section.state.bus(), current.name, identity.actor)
    if not await section.written(appended):
        return accepted(appended, user_path(current.name))
    return Response(status_code=204)


# --- API keys ----------------------------------------------------------------------

keys_router = APIRouter(prefix=f"{PREFIX}/keys", tags=["identity"], responses=REFUSALS)


@keys_router.get("")
async def list_keys(
    section: SectionDep,
    _: Admin,
    role: KeyRoleName | None = None,
    active: Annotated[bool | None, Query(description="Only usable (or only unusable) keys")] = None,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> Page[KeyPublic]:
    return await views.list_keys(section.projection.store.engine, role, active, limit, cursor)


@keys_router.post(
    "",
    status_code=201,
    response_model=KeyCreated,
    responses={**ACCEPTED, 409: {"description": "An active key has that name"}},
)
async def create_key(section: SectionDep, identity: Admin, body: KeyCreate) -> Any:
    """Create an API key; the answer shows the key itself, this once."""
    now = datetime.now(UTC)
    expires_at = ledger.check_expiry(body.expires_at, now)
    if any(k.name == body.name and k.active(now) for k in section.cache.keys.values()):
        raise Conflict(f"name: an active key is named {body.name!r}", field="name")
    created = await ledger.create_key(
        section.state.bus(), body.name, body.role, identity.actor, expires_at
    )
    location = key_path(created.event.key_id)
    shown = await section.written(created.appended)
    view = (
        await views.get_key(section.projection.store.engine, created.event.key_id)
        if shown
        else None
    )
    if view is None:
        # the key must be shown now or never: answer from the event itself
        event = created.event
        view = KeyPublic(
            id=event.key_id,
            name=event.name,
            role=event.role,
            prefix=event.prefix,
            created_at=event.time,
            created_by=event.by,
            expires_at=event.expires_at,
            revoked_at=None,
            revoked_by="",
            active=True,
        )
    body_out = KeyCreated(**view.model_dump(), key=created.value)
    return JSONResponse(
        body_out.model_dump(mode="json"), status_code=201, headers={"Location": location}
    )


@keys_router.get("/{key_id}", responses={404: {"description": "No such key"}})
async def get_key(section: SectionDep, _: Admin, key_id: str) -> KeyPublic:
    view = await views.get_key(section.projection.store.engine, key_id)
    if view is None:
        raise NotFound(f"key_id: no key {key_id!r}", field="key_id")
    return view


@keys_router.delete(
    "/{key_id}",
    status_code=204,
    responses={
        **ACCEPTED,
        404: {"description": "No such key"},
        409: {"description": "It would leave no administrator"},
    },
)
async def revoke_key(section: SectionDep, identity: Admin, key_id: str) -> Response:
    """Revoke a key: refused from the very next request on."""
    known = section.cache.keys.get(key_id)
    if known is None:
        raise NotFound(f"key_id: no key {key_id!r}", field="key_id")
    now = datetime.now(UTC)
    last = section.cache.admins_left_without(now, key_id=key_id) == 0
    if known.role == "admin" and known.active(now) and last:
        raise Conflict(
            f"key_id: {key_id} is the last administrator credential; make another first",
            field="key_id",
        )
    appended = await ledger.revoke_key(section.state.bus(), key_id, identity.actor)
    if not await section.written(appended):
        return accepted(appended, key_path(key_id))
    return Response(status_code=204)


ROUTERS = (auth_router, users_router, keys_router)
