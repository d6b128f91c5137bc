"""Reads of the gateway's read models. Every filter used here has an index."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.gateway.projections import (
    alert_timeline,
    alerts,
    check_results,
    checks,
    dead_letters,
    incident_notes,
    incident_timeline,
    incidents,
    notifications,
)

Row = RowMapping

TIMELINE_COLUMNS = ("seq", "type", "time", "by", "detail", "event")


async def list_alerts(
    engine: AsyncEngine, status: str | None, severity: str | None, limit: int
) -> list[Row]:
    query = select(alerts).order_by(alerts.c.fired_at.desc(), alerts.c.id).limit(limit)
    if status:
        query = query.where(alerts.c.status == status)
    if severity:
        query = query.where(alerts.c.severity == severity)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).mappings())


async def get_alert(engine: AsyncEngine, alert_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(alerts).where(alerts.c.id == alert_id))).mappings().first()
        if row is None:
            return None
        timeline = await conn.execute(
            select(*(alert_timeline.c[name] for name in TIMELINE_COLUMNS))
            .where(alert_timeline.c.alert_id == alert_id)
            .order_by(alert_timeline.c.seq)
        )
        return {**row, "timeline": list(timeline.mappings())}


async def list_incidents(
    engine: AsyncEngine, status: str | None, severity: str | None, limit: int
) -> list[Row]:
    query = select(incidents).order_by(incidents.c.opened_at.desc(), incidents.c.id).limit(limit)
    if status:
        query = query.where(incidents.c.status == status)
    if severity:
        query = query.where(incidents.c.severity == severity)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).mappings())


async def get_incident(engine: AsyncEngine, incident_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (
            (await conn.execute(select(incidents).where(incidents.c.id == incident_id)))
            .mappings()
            .first()
        )
        if row is None:
            return None
        timeline = await conn.execute(
            select(*(incident_timeline.c[name] for name in TIMELINE_COLUMNS))
            .where(incident_timeline.c.incident_id == incident_id)
            .order_by(incident_timeline.c.seq)
        )
        notes = await conn.execute(
            select(incident_notes)
            .where(incident_notes.c.incident_id == incident_id)
            .order_by(incident_notes.c.seq)
        )
        return {**row, "timeline": list(timeline.mappings()), "notes": list(notes.mappings())}


async def list_checks(engine: AsyncEngine) -> list[Row]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(checks).order_by(checks.c.name))).mappings())


async def get_check(engine: AsyncEngine, check_id: str) -> Row | None:
    async with engine.connect() as conn:
        result = await conn.execute(select(checks).where(checks.c.id == check_id))
        return result.mappings().first()


async def list_check_results(engine: AsyncEngine, check_id: str | None, limit: int) -> list[Row]:
    query = select(check_results).order_by(check_results.c.seq.desc()).limit(limit)
    if check_id:
        query = query.where(check_results.c.check_id == check_id)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).mappings())


async def list_notifications(
    engine: AsyncEngine, channel: str | None, status: str | None, limit: int
) -> list[Row]:
    query = select(notifications).order_by(notifications.c.seq.desc()).limit(limit)
    if channel:
        query = query.where(notifications.c.channel == channel)
    if status:
        query = query.where(notifications.c.status == status)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).mappings())


async def list_dead_letters(engine: AsyncEngine, consumer: str | None, limit: int) -> list[Row]:
    query = select(dead_letters).order_by(dead_letters.c.seq.desc()).limit(limit)
    if consumer:
        query = query.where(dead_letters.c.consumer == consumer)
    async with engine.connect() as conn:
        return list((await conn.execute(query)).mappings())


async def dashboard_counts(engine: AsyncEngine) -> dict[str, Any]:
    """Counts for the overview, all GROUP BYs over (status, severity) indexes."""
    async with engine.connect() as conn:
        alert_counts = await _grouped(conn, alerts)
        incident_counts = await _grouped(conn, incidents)
        check_rows = await conn.execute(
            select(
                checks.c.id,
                checks.c.name,
                checks.c.enabled,
                checks.c.last_ok,
                checks.c.last_status_code,
                checks.c.last_latency_ms,
                checks.c.last_run_at,
                checks.c.consecutive_failures,
            ).order_by(checks.c.name)
        )
        check_list = list(check_rows.mappings())
    by_status: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    matrix: dict[str, dict[str, int]] = {}
    for (status, severity), count in alert_counts.items():
        by_status[status] = by_status.get(status, 0) + count
        matrix.setdefault(status, {})[severity] = count
        if status != "resolved":
            by_severity[severity] = by_severity.get(severity, 0) + count
    open_by_status: dict[str, int] = {}
    open_by_severity: dict[str, int] = {}
    for (status, severity), count in incident_counts.items():
        if status == "resolved":
            continue
        open_by_status[status] = open_by_status.get(status, 0) + count
        open_by_severity[severity] = open_by_severity.get(severity, 0) + count
    return {
        "alerts_by_status": by_status,
        "alerts_by_severity": by_severity,
        "alerts_by_status_and_severity": matrix,
        "open_incidents_by_status": open_by_status,
        "open_incidents_by_severity": open_by_severity,
        "checks": check_list,
    }


async def _grouped(conn: AsyncConnection, table: Any) -> dict[tuple[str, str], int]:
    result = await conn.execute(
        select(table.c.status, table.c.severity, func.count()).group_by(
            table.c.status, table.c.severity
        )
    )
    return {(status, severity): int(count) for status, severity, count in result}
