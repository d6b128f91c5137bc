"""Applies SYNTHETIC events to the checks and their results."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.common.projection import LiveView, Projection
from services.gateway.common.tables import upsert
from services.gateway.common.views import rows_as
from services.gateway.synthetic.schemas import CheckPublic
from services.gateway.synthetic.tables import check_results, checks
from shared.events import (
    CheckConfigured,
    CheckRemoved,
    CheckRunRecorded,
    Event,
)
from shared.streams import SYNTHETIC

RESULTS_KEPT_PER_CHECK = 1000


async def project_synthetic(
    conn: AsyncConnection, event: Event, seq: int, keep: int = RESULTS_KEPT_PER_CHECK
) -> None:
    check_id = event.aggregate_id
    if isinstance(event, CheckConfigured):
        await upsert(
            conn,
            checks,
            {"id": check_id},
            {
                "name": event.name,
                "kind": event.kind,
                "url": event.url,
                "method": event.method,
                "expected_status": event.expected_status,
                "timeout_s": event.timeout_s,
                "interval_s": event.interval_s,
                "failures_before_alert": event.failures_before_alert,
                "enabled": event.enabled,
                "source": event.source,
                "version": event.version,
                "configured_at": event.time,
            },
        )
    elif isinstance(event, CheckRemoved):
        await conn.execute(delete(check_results).where(check_results.c.check_id == check_id))
        await conn.execute(delete(checks).where(checks.c.id == check_id))
    elif isinstance(event, CheckRunRecorded):
        await conn.execute(
            insert(check_results).values(
                seq=seq,
                check_id=check_id,
                name=event.name,
                ok=event.ok,
                status_code=event.status_code,
                latency_ms=event.latency_ms,
                error=event.error,
                consecutive_failures=event.consecutive_failures,
                trigger=event.trigger,
                time=event.time,
            )
        )
        await conn.execute(
            update(checks)
            .where(checks.c.id == check_id)
            .values(
                last_ok=event.ok,
                last_status_code=event.status_code,
                last_latency_ms=event.latency_ms,
                last_error=event.error,
                last_run_at=event.time,
                consecutive_failures=event.consecutive_failures,
            )
        )
        await _prune_results(conn, check_id, keep)


async def _prune_results(conn: AsyncConnection, check_id: str, keep: int) -> None:
    """Keep the latest ``keep`` results of a check; older runs live on in the stream."""
    oldest_kept = await conn.scalar(
        select(check_results.c.seq)
        .where(check_results.c.check_id == check_id)
        .order_by(check_results.c.seq.desc())
        .offset(keep - 1)
        .limit(1)
    )
    if oldest_kept is not None:
        await conn.execute(
            delete(check_results).where(
                check_results.c.check_id == check_id, check_results.c.seq < oldest_kept
            )
        )


PROJECTIONS = (
    Projection(
        "gateway-synthetic",
        SYNTHETIC,
        "synthetic.>",
        project_synthetic,
        live=LiveView("check", rows_as(CheckPublic, checks)),
    ),
)
