"""The overview's counts, read across the sections' tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import RowMapping, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.gateway.alerts.tables import alerts
from services.gateway.incidents.tables import incidents
from services.gateway.synthetic.tables import checks

Row = RowMapping


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


async def check_summary(engine: AsyncEngine) -> dict[str, Any]:
    """How the synthetic checks stand: counts, and the names of those failing."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(checks.c.name, checks.c.enabled, checks.c.last_ok).order_by(checks.c.name)
            )
        ).all()
    enabled = [row for row in rows if row.enabled]
    return {
        "total": len(rows),
        "enabled": len(enabled),
        "passing": sum(1 for row in enabled if row.last_ok is True),
        "failing": [row.name for row in enabled if row.last_ok is False],
        "not_run": sum(1 for row in enabled if row.last_ok is None),
    }
