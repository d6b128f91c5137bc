"""Reads of the identity read model, as the API shows them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.identity.paging import decode_cursor, encode_cursor
from services.gateway.identity.projector import _aware
from services.gateway.identity.schemas import KeyPublic, Page, UserPublic
from services.gateway.identity.tables import api_keys, users
from shared.errors import InvalidInput


def _when(value: datetime) -> datetime:
    return _aware(value) or value


def user_view(row: Any) -> UserPublic:
    return UserPublic(
        name=row["name"],
        role=row["role"],
        created_at=_when(row["created_at"]),
        created_by=row["created_by"],
        updated_at=_when(row["updated_at"]),
    )


def key_view(row: Any, now: datetime | None = None) -> KeyPublic:
    now = now or datetime.now(UTC)
    expires_at = _aware(row["expires_at"])
    revoked_at = _aware(row["revoked_at"])
    return KeyPublic(
        id=row["key_id"],
        name=row["name"],
        role=row["role"],
        prefix=row["prefix"],
        created_at=_when(row["created_at"]),
        created_by=row["created_by"],
        expires_at=expires_at,
        revoked_at=revoked_at,
        revoked_by=row["revoked_by"],
        active=revoked_at is None and (expires_at is None or expires_at > now),
    )


async def get_user(engine: AsyncEngine, name: str) -> UserPublic | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(users).where(users.c.name == name))).mappings().first()
    return None if row is None else user_view(row)


async def list_users(
    engine: AsyncEngine, role: str | None, limit: int, cursor: str | None
) -> Page[UserPublic]:
    after = decode_cursor(cursor)
    if after is not None and not isinstance(after, str):
        raise InvalidInput("cursor: not a cursor this list gave out", field="cursor")
    query = select(users).order_by(users.c.name).limit(limit + 1)
    if role is not None:
        query = query.where(users.c.role == role)
    if after is not None:
        query = query.where(users.c.name > after)
    async with engine.connect() as conn:
        rows = list((await conn.execute(query)).mappings())
    more = len(rows) > limit
    items = [user_view(row) for row in rows[:limit]]
    return Page[UserPublic](
        items=items, next_cursor=encode_cursor(items[-1].name) if more and items else None
    )


async def get_key(engine: AsyncEngine, key_id: str) -> KeyPublic | None:
    async with engine.connect() as conn:
        row = (
            (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)))
            .mappings()
            .first()
        )
    return None if row is None else key_view(row)


async def list_keys(
    engine: AsyncEngine, role: str | None, active: bool | None, limit: int, cursor: str | None
) -> Page[KeyPublic]:
    """Newest first; ``active`` filters on revocation and expiry now."""
    before = decode_cursor(cursor)
    if before is not None and not isinstance(before, int):
        raise InvalidInput("cursor: not a cursor this list gave out", field="cursor")
    now = datetime.now(UTC)
    query = select(api_keys).order_by(api_keys.c.seq.desc()).limit(limit + 1)
    if role is not None:
        query = query.where(api_keys.c.role == role)
    if before is not None:
        query = query.where(api_keys.c.seq < before)
    if active is True:
        query = query.where(
            api_keys.c.revoked_at.is_(None),
            (api_keys.c.expires_at.is_(None)) | (api_keys.c.expires_at > now),
        )
    elif active is False:
        query = query.where((api_keys.c.revoked_at.is_not(None)) | (api_keys.c.expires_at <= now))
    async with engine.connect() as conn:
        rows = list((await conn.execute(query)).mappings())
    more = len(rows) > limit
    page = rows[:limit]
    return Page[KeyPublic](
        items=[key_view(row, now) for row in page],
        next_cursor=encode_cursor(int(page[-1]["seq"])) if more and page else None,
    )
