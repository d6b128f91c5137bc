"""AUDIT into its read model; a row per stream sequence, so a replay changes nothing."""

from __future__ import annotations

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.audit.tables import audit_events
from shared.events import AuditRecorded, Event


async def project_audit(conn: AsyncConnection, event: Event, seq: int) -> None:
    if not isinstance(event, AuditRecorded):
        return
    await conn.execute(delete(audit_events).where(audit_events.c.seq == seq))
    await conn.execute(
        insert(audit_events).values(
            seq=seq,
            id=event.id,
            time=event.time,
            actor=event.actor,
            identity_kind=event.identity_kind,
            key_id=event.key_id,
            role=event.role,
            method=event.method,
            route=event.route,
            target=event.target,
            client=event.client,
            status=event.status,
            outcome=event.outcome,
        )
    )
