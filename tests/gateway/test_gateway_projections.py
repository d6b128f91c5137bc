"""The read models: each event applied once, and a rebuild from the log gives the live state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.alerts.tables import alert_timeline, alerts
from services.gateway.app import build_gateway, projection_store, rebuild
from services.gateway.common.projection import projection_handler
from services.gateway.common.state import GatewayState
from services.gateway.common.tables import metadata
from services.gateway.sections import PROJECTION_BY_STREAM
from services.gateway.synthetic.projector import project_synthetic
from services.gateway.synthetic.tables import check_results, checks
from shared import subjects
from shared.bus import EventBus
from shared.consumer import Delivery
from shared.db import ProjectionStore
from shared.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertFired,
    AlertResolved,
    CheckConfigured,
    CheckRemoved,
    CheckRunRecorded,
    Event,
    IncidentAssigned,
    IncidentNoteAdded,
    IncidentOpened,
    IncidentResolved,
    IncidentSeverityChanged,
    IncidentStatusChanged,
    MessageDeadLettered,
    NotificationDelivered,
    NotificationFailed,
    Severity,
)
from shared.events.paging import EscalationStarted, EscalationStepFired, PageTarget
from shared.natsserver import free_port
from shared.settings import Settings
from shared.streams import stream_for_subject
from tests.conftest import RuntimeFactory
from tests.waiting import eventually

T0 = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
CPU: dict[str, Any] = {
    "rule": "HighCPU",
    "fingerprint": "fp-cpu-web1",
    "metric": "system_cpu_percent",
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fired(alert_id: str, value: float = 93.0, severity: Severity = "critical") -> AlertFired:
    return AlertFired(
        aggregate_id=alert_id,
        time=at(0),
        labels={"host": "web-1"},
        severity=severity,
        value=value,
        threshold=90.0,
        summary="CPU high",
        **CPU,
    )


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ProjectionStore]:
    projections = projection_store(Settings(database_url=database_url))
    await projections.reset()
    yield projections
    await projections.drop_all()
    await projections.dispose()


def unconnected() -> EventBus:
    raise RuntimeError("no bus in this test")


async def rows(store: ProjectionStore, query: Any) -> list[dict[str, Any]]:
    async with store.engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


async def test_a_redelivered_event_is_applied_once(store: ProjectionStore) -> None:
    state = GatewayState(settings=Settings(), store=store, bus_of=unconnected)
    client = state.live.subscribe()
    handle = projection_handler(state, PROJECTION_BY_STREAM["ALERTS"])
    first = fired("a-1")
    ack = AlertAcknowledged(
        aggregate_id="a-1", version=2, time=at(5), by="ann", **CPU, severity="critical"
    )

    def delivered(seq: int, times: int) -> Delivery:
        return Delivery("ALERTS", subjects.alert("a-1"), seq, times, "gateway-alerts")

    await handle([(first, delivered(1, 1))])
    # the first message again, after a lost ack, in one batch with the next
    await handle([(first, delivered(1, 2)), (ack, delivered(2, 1))])
    # and both again
    await handle([(first, delivered(1, 3)), (ack, delivered(2, 2))])

    [alert] = await rows(store, select(alerts))
    assert (alert["status"], alert["acknowledged_by"], alert["version"]) == (
        "acknowledged",
        "ann",
        2,
    )
    timeline = await rows(store, select(alert_timeline.c.seq, alert_timeline.c.type))
    assert timeline == [{"seq": 1, "type": "AlertFired"}, {"seq": 2, "type": "AlertAcknowledged"}]
    assert await store.last_seq("gateway-alerts") == 2
    pushed = [client.queue.get_nowait() for _ in range(client.queue.qsize())]
    assert [(item.change, item.seq) for item in pushed if item is not None] == [
        ("AlertFired", 1),
        ("AlertAcknowledged", 2),
    ]


async def test_check_results_keep_only_the_latest_per_check(store: ProjectionStore) -> None:
    configured = CheckConfigured(
        aggregate_id="chk-1", name="home", url="http://x.test/", time=at(0)
    )

    async def apply(event: Event, seq: int) -> None:
        async def change(conn: AsyncConnection) -> None:
            await project_synthetic(conn, event, seq, keep=3)

        await store.apply("gateway-synthetic", seq, change)

    await apply(configured, 1)
    for n in range(2, 8):
        run = CheckRunRecorded(
            aggregate_id="chk-1",
            name="home",
            ok=n != 7,
            status_code=200 if n != 7 else 503,
            latency_ms=float(n),
            consecutive_failures=0 if n != 7 else 1,
            time=at(n),
        )
        await apply(run, n)
    kept = await rows(store, select(check_results.c.seq).order_by(check_results.c.seq))
    assert [r["seq"] for r in kept] == [5, 6, 7]
    [check] = await rows(store, select(checks))
    assert (check["last_ok"], check["last_status_code"], check["consecutive_failures"]) == (
        False,
        503,
        1,
    )


def scenario() -> list[tuple[str, Event]]:
    """A bit of everything on all five streams, with every kind of update."""
    cpu: dict[str, Any] = {**CPU, "labels": {"host": "web-1"}}
    return [
        (subjects.alert("a-1"), fired("a-1")),
        (subjects.alert("a-2"), fired("a-2", value=75.0, severity="warning")),
        (
            subjects.alert("a-1"),
            AlertAcknowledged(
                aggregate_id="a-1",
                version=2,
                time=at(10),
                by="ann",
                comment="looking",
                severity="critical",
                **cpu,
            ),
        ),
        (
            subjects.alert("a-2"),
            AlertEscalated(
                aggregate_id="a-2",
                version=2,
                time=at(20),
                severity="critical",
                previous_severity="warning",
                value=95.0,
                threshold=90.0,
                **cpu,
            ),
        ),
        (
            subjects.alert("a-2"),
            AlertResolved(
                aggregate_id="a-2", version=3, time=at(30), severity="critical", value=40.0, **cpu
            ),
        ),
        (
            subjects.incident("i-1"),
            IncidentOpened(
                aggregate_id="i-1",
                time=at(1),
                title="web-1 CPU",
                severity="critical",
                alert_id="a-1",
                fingerprint="fp-cpu-web1",
            ),
        ),
        (
            subjects.incident("i-1"),
            IncidentNoteAdded(
                aggregate_id="i-1",
                version=2,
                time=at(2),
                note_id="n-1",
                text="restarted worker",
                author="ann",
            ),
        ),
        (
            subjects.incident("i-1"),
            IncidentAssigned(aggregate_id="i-1", version=3, time=at(3), assignee="bob", by="ann"),
        ),
        (
            subjects.incident("i-1"),
            IncidentStatusChanged(
                aggregate_id="i-1",
                version=4,
                time=at(4),
                previous_status="investigating",
                status="identified",
                by="bob",
            ),
        ),
        (
            subjects.incident("i-1"),
            IncidentSeverityChanged(
                aggregate_id="i-1",
                version=5,
                time=at(5),
                previous_severity="critical",
                severity="warning",
                by="bob",
            ),
        ),
        (
            subjects.incident("i-1"),
            IncidentResolved(
                aggregate_id="i-1",
                version=6,
                time=at(6),
                previous_status="identified",
                title="web-1 CPU",
                severity="warning",
                by="bob",
                message="fixed",
            ),
        ),
        (
            subjects.incident("i-2"),
            IncidentOpened(aggregate_id="i-2", time=at(7), title="slow checkout", severity="info"),
        ),
        (
            subjects.check_definition("c-1"),
            CheckConfigured(aggregate_id="c-1", name="home", url="http://x.test/", time=at(0)),
        ),
        (
            subjects.check_definition("c-2"),
            CheckConfigured(aggregate_id="c-2", name="api", url="http://y.test/", time=at(0)),
        ),
        (
            subjects.check_result("c-1"),
            CheckRunRecorded(
                aggregate_id="c-1",
                name="home",
                ok=True,
                status_code=200,
                latency_ms=12.5,
                consecutive_failures=0,
                time=at(1),
            ),
        ),
        (
            subjects.check_result("c-1"),
            CheckRunRecorded(
                aggregate_id="c-1",
                name="home",
                ok=False,
                status_code=None,
                latency_ms=10000.0,
                error="timeout",
                consecutive_failures=1,
                trigger="manual",
                time=at(2),
            ),
        ),
        (
            subjects.check_result("c-2"),
            CheckRunRecorded(
                aggregate_id="c-2",
                name="api",
                ok=True,
                status_code=200,
                latency_ms=3.0,
                consecutive_failures=0,
                time=at(3),
            ),
        ),
        (
            subjects.check_definition("c-2"),
            CheckRemoved(aggregate_id="c-2", name="api", time=at(4)),
        ),
        (
            subjects.notification("d-1"),
            NotificationDelivered(
                aggregate_id="d-1",
                event_id="e-1",
                event_type="AlertFired",
                channel="ops",
                subject_id="a-1",
                attempts=1,
                status_code=200,
                latency_ms=8.0,
                time=at(1),
            ),
        ),
        (
            subjects.notification("d-2"),
            NotificationFailed(
                aggregate_id="d-2",
                event_id="e-1",
                event_type="AlertFired",
                channel="pager",
                subject_id="a-1",
                attempts=8,
                error="HTTP 500",
                permanent=False,
                time=at(2),
            ),
        ),
        (
            subjects.escalation("x-1"),
            EscalationStarted(
                aggregate_id="x-1",
                alert_id="a-1",
                policy="critical",
                fingerprint="fp-cpu-web1",
                rule="HighCPU",
                severity="critical",
                time=at(1),
            ),
        ),
        (
            subjects.escalation("x-1"),
            EscalationStepFired(
                aggregate_id="x-1",
                alert_id="a-1",
                policy="critical",
                step=0,
                round=0,
                targets=[PageTarget(channel="ops", via="channel")],
                fingerprint="fp-cpu-web1",
                rule="HighCPU",
                severity="critical",
                time=at(1),
            ),
        ),
        (
            subjects.dead_letter("notifier-alerts"),
            MessageDeadLettered(
                aggregate_id="notifier-alerts",
                consumer="notifier-alerts",
                stream="ALERTS",
                stream_seq=3,
                subject="alerts.events.a-1",
                deliveries=8,
                error="boom",
                payload="{}",
                time=at(3),
            ),
        ),
    ]


async def snapshot(store: ProjectionStore) -> dict[str, list[tuple[Any, ...]]]:
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            result = await conn.execute(select(table).order_by(*table.primary_key.columns))
            tables[table.name] = [tuple(row) for row in result]
    return tables


async def test_rebuild_gives_exactly_the_live_state(
    settings: Settings, bus: EventBus, database_url: str, start_service: RuntimeFactory
) -> None:
    gateway_settings = settings.model_copy(
        update={"database_url": database_url, "port": free_port()}
    )
    gateway = build_gateway(gateway_settings)
    await start_service(gateway.runtime)
    last_seq: dict[str, int] = {}
    for subject, event in scenario():
        seq = await bus.publish(subject, event)
        last_seq[PROJECTION_BY_STREAM[stream_for_subject(subject).name].name] = seq
    store = gateway.state.store

    async def caught_up() -> bool:
        return all([await store.last_seq(name) == seq for name, seq in last_seq.items()])

    await eventually(caught_up)
    live = await snapshot(store)
    await gateway.runtime.stop()

    await rebuild(gateway_settings)

    rebuilt_store = projection_store(gateway_settings)
    try:
        rebuilt = await snapshot(rebuilt_store)
    finally:
        await rebuilt_store.dispose()
    assert rebuilt == live
    # and the live state is what the events say
    assert {name: len(table) for name, table in live.items()} == {
        "gateway_alerts": 2,
        "gateway_alert_timeline": 5,
        "gateway_alert_suppression": 2,
        "gateway_incidents": 2,
        "gateway_incident_timeline": 7,
        "gateway_incident_notes": 1,
        "gateway_checks": 1,
        "gateway_check_results": 2,
        "gateway_notifications": 2,
        "gateway_subject_deliveries": 2,
        "gateway_alert_paging": 2,
        "gateway_dead_letters": 1,
        "gateway_dead_letter_retries": 0,
        "gateway_rules": 0,
        "gateway_channels": 0,
        "gateway_contacts": 0,
        "gateway_schedules": 0,
        "gateway_escalation_policies": 0,
        "gateway_silences": 0,
        "gateway_maintenance": 0,
        "gateway_checkpoints": 6,
    }
    assert dict(live["gateway_checkpoints"]) == last_seq
    alerts_by_id = {row[0]: row for row in live["gateway_alerts"]}
    columns = [c.name for c in alerts.columns]
    a2 = dict(zip(columns, alerts_by_id["a-2"], strict=True))
    assert (a2["status"], a2["severity"], a2["value"], a2["version"]) == (
        "resolved",
        "critical",
        40.0,
        3,
    )
