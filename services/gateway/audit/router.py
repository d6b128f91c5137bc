"""``GET /api/monitoring/audit``: the audit log, newest first, for administrators."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.access import require
from services.gateway.audit.tables import audit_events
from services.gateway.common.schemas import DateTimeIn
from services.gateway.identity.paging import CursorParam, LimitParam, decode_cursor, encode_cursor
from shared.errors import InvalidInput

PREFIX = "/api/monitoring"


class AuditEntryPublic(BaseModel):
    id: str
    time: datetime
    actor: str = Field(description="The identity's actor, or the name a login was for")
    identity_kind: Literal["user", "key", "anonymous"]
    key_id: str
    role: str
    action: str = Field(
        description="Method and route, e.g. POST /api/monitoring/alerts/{alert_id}/ack"
    )
    method: str
    route: str
    target: dict[str, str]
    client: str
    status: int
    outcome: Literal["ok", "refused", "rejected", "failed"]


class AuditPage(BaseModel):
    items: list[AuditEntryPublic]
    next_cursor: str | None = None


async def engine_of(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.audit.projection.store.engine
    return engine


audit_router = APIRouter(
    prefix=PREFIX,
    tags=["audit"],
    responses={
        401: {"description": "No valid credentials"},
        403: {"description": "The identity's role does not allow this"},
        429: {"description": "Too many requests from this identity; see Retry-After"},
    },
)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@audit_router.get("/audit", dependencies=[require("admin")])
async def list_audit(
    engine: Annotated[AsyncEngine, Depends(engine_of)],
    actor: Annotated[str | None, Query(max_length=300, description="Exact actor")] = None,
    action: Annotated[
        str | None,
        Query(
            max_length=320, description="Exact method and route, e.g. 'POST /api/monitoring/keys'"
        ),
    ] = None,
    outcome: Literal["ok", "refused", "rejected", "failed"] | None = None,
    status: Annotated[int | None, Query(ge=100, le=599)] = None,
    since: Annotated[DateTimeIn | None, Query(description="From this time on (inclusive)")] = None,
    until: Annotated[DateTimeIn | None, Query(description="Before this time (exclusive)")] = None,
    limit: LimitParam = 100,
    cursor: CursorParam = None,
) -> AuditPage:
    before = decode_cursor(cursor)
    if before is not None and not isinstance(before, int):
        raise InvalidInput("cursor: not a cursor this list gave out", field="cursor")
    query = select(audit_events).order_by(audit_events.c.seq.desc()).limit(limit + 1)
    if actor is not None:
        query = query.where(audit_events.c.actor == actor)
    if action is not None:
        method, _, route = action.partition(" ")
        if not route:
            raise InvalidInput("action: expected '<METHOD> <route>'", field="action")
        query = query.where(audit_events.c.method == method.upper(), audit_events.c.route == route)
    if outcome is not None:
        query = query.where(audit_events.c.outcome == outcome)
    if status is not None:
        query = query.where(audit_events.c.status == status)
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name}: must carry a time zone", field=name)
    if since is not None:
        query = query.where(audit_events.c.time >= since)
    if until is not None:
        query = query.where(audit_events.c.time < until)
    if before is not None:
        query = query.where(audit_events.c.seq < before)
    async with engine.connect() as conn:
        rows = list((await conn.execute(query)).mappings())
    page = rows[:limit]
    items = [_entry(row) for row in page]
    more = len(rows) > limit
    return AuditPage(items=items, next_cursor=encode_cursor(int(page[-1]["seq"])) if more else None)


def _entry(row: Any) -> AuditEntryPublic:
    return AuditEntryPublic(
        id=row["id"],
        time=_aware(row["time"]),
        actor=row["actor"],
        identity_kind=row["identity_kind"],
        key_id=row["key_id"],
        role=row["role"],
        action=f"{row['method']} {row['route']}",
        method=row["method"],
        route=row["route"],
        target=row["target"],
        client=row["client"],
        status=row["status"],
        outcome=row["outcome"],
    )
