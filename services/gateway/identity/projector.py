"""IDENTITY into the read model, and the read model back into the in-memory cache at start.

Upserts throughout: applying an event again (a redelivery, a replay over existing rows)
leaves the same rows. Values come from the events, never from the clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.gateway.identity.cache import IdentityCache, KeyRecord, SessionRecord, UserRecord
from services.gateway.identity.tables import api_keys, sessions, users
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


async def project_identity(conn: AsyncConnection, event: Event, seq: int) -> None:
    if isinstance(event, UserCreated):
        await conn.execute(delete(users).where(users.c.name == event.name))
        await conn.execute(
            insert(users).values(
                name=event.name,
                role=event.role,
                password_hash=event.password_hash,
                created_at=event.time,
                created_by=event.by,
                updated_at=event.time,
                version=event.version,
            )
        )
    elif isinstance(event, UserUpdated):
        changes: dict[str, Any] = {"updated_at": event.time, "version": event.version}
        if event.role is not None:
            changes["role"] = event.role
        if event.password_hash is not None:
            changes["password_hash"] = event.password_hash
        await conn.execute(update(users).where(users.c.name == event.name).values(**changes))
        if event.password_hash is not None:  # a new password ends the user's sessions
            await conn.execute(delete(sessions).where(sessions.c.user == event.name))
    elif isinstance(event, UserRemoved):
        await conn.execute(delete(users).where(users.c.name == event.name))
        await conn.execute(delete(sessions).where(sessions.c.user == event.name))
    elif isinstance(event, ApiKeyCreated):
        await conn.execute(delete(api_keys).where(api_keys.c.key_id == event.key_id))
        await conn.execute(
            insert(api_keys).values(
                key_id=event.key_id,
                name=event.name,
                role=event.role,
                prefix=event.prefix,
                key_hash=event.key_hash,
                expires_at=event.expires_at,
                created_at=event.time,
                created_by=event.by,
                revoked_at=None,
                revoked_by="",
                seq=seq,
            )
        )
    elif isinstance(event, ApiKeyRevoked):
        await conn.execute(
            update(api_keys)
            .where(api_keys.c.key_id == event.key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=event.time, revoked_by=event.by)
        )
    elif isinstance(event, SessionStarted):
        await conn.execute(delete(sessions).where(sessions.c.session_id == event.session_id))
        known = await conn.scalar(select(users.c.name).where(users.c.name == event.user))
        if known is not None:
            await conn.execute(
                insert(sessions).values(
                    session_id=event.session_id,
                    user=event.user,
                    token_hash=event.token_hash,
                    expires_at=event.expires_at,
                    started_at=event.time,
                    client=event.client,
                )
            )
    elif isinstance(event, SessionEnded):
        await conn.execute(delete(sessions).where(sessions.c.session_id == event.session_id))


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


async def load_cache(engine: AsyncEngine, applied_seq: int) -> IdentityCache:
    """The cache as of the read model's checkpoint ``applied_seq``; expired sessions left out."""
    cache = IdentityCache()
    now = datetime.now(UTC)
    async with engine.connect() as conn:
        for row in (await conn.execute(select(users))).mappings():
            cache.users[row["name"]] = UserRecord(
                row["name"],
                row["role"],
                row["password_hash"],
                _aware(row["created_at"]) or now,
                row["created_by"],
                _aware(row["updated_at"]) or now,
            )
        for row in (await conn.execute(select(api_keys))).mappings():
            key = KeyRecord(
                row["key_id"],
                row["name"],
                row["role"],
                row["prefix"],
                row["key_hash"],
                _aware(row["expires_at"]),
                _aware(row["created_at"]) or now,
                row["created_by"],
                _aware(row["revoked_at"]),
                row["revoked_by"],
            )
            cache.keys[key.key_id] = key
            if key.revoked_at is None:
                cache.keys_by_hash[key.key_hash] = key
        query = select(sessions).where(sessions.c.expires_at > now)
        for row in (await conn.execute(query)).mappings():
            session = SessionRecord(
                row["session_id"],
                row["user"],
                row["token_hash"],
                _aware(row["expires_at"]) or now,
                _aware(row["started_at"]) or now,
            )
            cache.sessions[session.token_hash] = session
    cache.applied_seq = applied_seq
    return cache
