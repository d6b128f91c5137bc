"""Component health for /health/checks: the event log (NATS, JetStream storage), each
service's database, each registered durable consumer's lag, the data dir's disk and the
synthetic checks, each with a status and the detail that explains it."""

from __future__ import annotations

import asyncio
from typing import Any

from services.gateway.health.liveness import ServiceStatus
from services.gateway.health.schemas import (
    ComponentPublic,
    ComponentStatus,
    ConsumerHealthPublic,
    HealthStatus,
)
from services.gateway.health.verdict import (
    MB,
    ConsumerFacts,
    HealthLimits,
    consumer_problems,
    disk_problem,
)
from shared.bus import EventBus
from shared.durables import DURABLES, durable_named
from shared.faults import disk_state
from shared.settings import Settings

ACCOUNT_INFO_TIMEOUT_S = 2.0
STORAGE_DEGRADED_PERCENT = 90.0
# services that keep a database and report it in their heartbeats
DATABASE_SERVICES = ("gateway", "metrics", "notifier")


def worst(components: list[ComponentPublic]) -> HealthStatus:
    statuses = {c.status for c in components}
    if "failing" in statuses:
        return "failing"
    return "degraded" if statuses & {"degraded", "unknown"} else "ok"


async def nats_component(
    bus: EventBus | None, probe_error: str | None, data_dir_free: int | None
) -> ComponentPublic:
    if bus is None:
        return ComponentPublic(
            name="nats", kind="nats", status="failing", detail="the gateway is not connected"
        )
    try:
        info = await asyncio.wait_for(bus.js.account_info(), ACCOUNT_INFO_TIMEOUT_S)
    except Exception as exc:  # a time-out or the server's refusal; the reason is shown
        reason = "no answer" if isinstance(exc, TimeoutError) else type(exc).__name__
        return ComponentPublic(
            name="nats",
            kind="nats",
            status="degraded",
            detail=f"connected; JetStream account info unavailable: {reason}",
            facts={"connected": True},
        )
    used = int(info.storage or 0)
    limit = info.limits.max_storage if info.limits else None
    limited = limit is not None and limit > 0
    free = (limit - used) if limited and limit is not None else data_dir_free
    facts: dict[str, Any] = {
        "connected": True,
        "storage_used_bytes": used,
        "storage_limit_bytes": limit if limited else None,
        "storage_free_bytes": free,
        "streams": info.streams,
        "consumers": info.consumers,
    }
    room = f"{free / MB:.0f} MB free" if free is not None else "free space unknown"
    if not limited:
        room += " on the data dir's disk"
    status: ComponentStatus = "ok"
    detail = f"connected; JetStream stores {used / MB:.1f} MB, {room}"
    if probe_error is not None:
        status, detail = "failing", f"connected, but the event log refuses writes: {probe_error}"
    elif limited and limit is not None and 100.0 * used / limit >= STORAGE_DEGRADED_PERCENT:
        status = "degraded"
        detail += f" ({100.0 * used / limit:.0f} % of the account's limit)"
    return ComponentPublic(name="nats", kind="nats", status=status, detail=detail, facts=facts)


def database_components(statuses: list[ServiceStatus]) -> list[ComponentPublic]:
    found = []
    by_name = {status.service: status for status in statuses}
    names = list(DATABASE_SERVICES) + sorted(
        name
        for name, status in by_name.items()
        if name not in DATABASE_SERVICES and "database" in status.report
    )
    for name in names:
        status = by_name.get(name)
        database = status.report.get("database") if status is not None else None
        component = f"database:{name}"
        if status is None or not status.up:
            found.append(
                ComponentPublic(
                    name=component,
                    kind="database",
                    status="unknown",
                    detail=f"{name} is not running, so it reports no database",
                )
            )
        elif not isinstance(database, dict):
            found.append(
                ComponentPublic(
                    name=component,
                    kind="database",
                    status="unknown",
                    detail=f"{name} has not reported its database yet",
                )
            )
        else:
            ok = bool(database.get("ok"))
            found.append(
                ComponentPublic(
                    name=component,
                    kind="database",
                    status="ok" if ok else "failing",
                    detail=str(database.get("detail", "")),
                    facts={"service": name, "ok": ok},
                )
            )
    return found


def consumer_components(
    consumers: list[ConsumerHealthPublic], limits: HealthLimits
) -> list[ComponentPublic]:
    """Every registered durable, and any other the server has, with its lag."""
    by_name = {c.durable: c for c in consumers}
    found = []
    names = [d.name for d in DURABLES] + sorted(set(by_name) - {d.name for d in DURABLES})
    for name in names:
        registered = durable_named(name)
        owner = registered.service if registered else None
        consumer = by_name.get(name)
        facts: dict[str, Any] = {
            "service": owner,
            "stream": consumer.stream if consumer else registered and registered.stream,
            "role": registered.role if registered else None,
        }
        if consumer is None:
            found.append(
                ComponentPublic(
                    name=f"consumer:{name}",
                    kind="consumer",
                    status="unknown",
                    detail=f"not on the server yet: {owner} has not started it",
                    facts=facts,
                )
            )
            continue
        facts |= {
            "lag": consumer.lag,
            "pending": consumer.pending,
            "ack_pending": consumer.ack_pending,
            "stalled_s": consumer.stalled_s,
        }
        problems = consumer_problems(
            [
                ConsumerFacts(
                    consumer.stream,
                    name,
                    consumer.pending,
                    consumer.ack_pending,
                    consumer.ack_floor,
                    consumer.stalled_s,
                )
            ],
            limits,
        )
        status: ComponentStatus = problems[0].status if problems else "ok"
        detail = problems[0].reason if problems else f"lag {consumer.lag}"
        if registered is None:
            detail += " (not a consumer of this version: left by an older one?)"
        found.append(
            ComponentPublic(
                name=f"consumer:{name}", kind="consumer", status=status, detail=detail, facts=facts
            )
        )
    return found


def disk_component(settings: Settings, limits: HealthLimits) -> ComponentPublic:
    disk = disk_state(settings.data_dir)
    if disk is None:
        return ComponentPublic(
            name="disk",
            kind="disk",
            status="unknown",
            detail=f"the data dir {settings.data_dir} cannot be examined",
        )
    facts = disk.as_dict()
    problem = disk_problem("gateway", facts, limits)
    percent = 100.0 * disk.free_bytes / disk.total_bytes if disk.total_bytes else 0.0
    detail = f"{disk.free_bytes / MB:.0f} MB ({percent:.1f} %) free under {disk.path}"
    return ComponentPublic(
        name="disk",
        kind="disk",
        status=problem.status if problem else "ok",
        detail=problem.reason if problem else detail,
        facts=facts,
    )


def synthetic_component(summary: dict[str, Any]) -> ComponentPublic:
    failing: list[str] = summary["failing"]
    detail = (
        f"{summary['enabled']} of {summary['total']} checks enabled: {summary['passing']} "
        f"passing, {len(failing)} failing, {summary['not_run']} not run yet"
    )
    if failing:
        detail += f" (failing: {', '.join(failing[:10])})"
    return ComponentPublic(
        name="synthetic",
        kind="synthetic",
        status="degraded" if failing else "ok",
        detail=detail,
        facts=summary,
    )
