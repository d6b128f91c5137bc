"""Rules through request/reply against a real nats-server: applied live, file items read-only,
provisioning idempotent, and the API's rules kept across a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from services.alerts.app import build
from shared import subjects
from shared.bus import EventBus
from shared.commands import CREATE_RULE, DELETE_RULE, UPDATE_RULE
from shared.config import RuleConfig, VigilConfig
from shared.configbook import MAINTENANCE
from shared.errors import Conflict, InvalidInput, NotFound
from shared.events import (
    AlertEvent,
    AlertFired,
    AlertResolved,
    RuleCreated,
    RuleDeleted,
    RulesProvisioned,
    RuleUpdated,
    Sample,
    SamplesIngested,
)
from shared.settings import Settings
from shared.streams import CONFIG
from tests.conftest import RuntimeFactory
from tests.waiting import caught_up, eventually

FILE = VigilConfig(rules=[RuleConfig(name="HighCPU", metric="cpu", warning=70, critical=90)])
DISK = {"name": "DiskFull", "metric": "disk", "warning": 80, "critical": 95, "for": "0s"}


async def send(bus: EventBus, metric: str, value: float, host: str = "db-1") -> None:
    sample = Sample(name=metric, value=value, labels={"host": host})
    await bus.publish(
        subjects.samples("test"),
        SamplesIngested(aggregate_id="test", samples=[sample], received_at=time.time()),
    )


async def alert_events(bus: EventBus, count: int) -> list[AlertEvent]:
    async def probe() -> list[AlertEvent]:
        found = [r.event async for r in bus.replay("ALERTS") if isinstance(r.event, AlertEvent)]
        return found if len(found) >= count else []

    return await eventually(probe, what=f"{count} alert events")


async def config_events(bus: EventBus) -> list[tuple[str, object]]:
    """The rules' events (the service provisions its maintenance windows beside them)."""
    windows = MAINTENANCE.provisioned_subject
    return [(r.subject, r.event) async for r in bus.replay(CONFIG.name) if r.subject != windows]


async def test_a_rule_made_through_the_api_judges_the_very_next_sample(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build(settings, FILE))
    await send(bus, "disk", 99)  # no rule watches disk yet
    await caught_up(bus, "alerts-evaluator", "METRICS")
    created = await bus.request(CREATE_RULE, {"rule": DISK, "by": "key:admin"})
    assert (created["stream"], created["version"]) == ("CONFIG", 1)
    assert created["seq"] > 0
    await send(bus, "disk", 85)
    (fired,) = await alert_events(bus, 1)
    assert isinstance(fired, AlertFired)
    assert (fired.rule, fired.severity, fired.value) == ("DiskFull", "warning", 85)

    changed = await bus.request(
        UPDATE_RULE, {"name": "DiskFull", "rule": {**DISK, "critical": 86}, "by": "key:admin"}
    )
    assert changed["version"] == 2
    await send(bus, "disk", 87)
    escalated = (await alert_events(bus, 2))[1]
    assert (escalated.type, escalated.severity) == ("AlertEscalated", "critical")

    await bus.request(DELETE_RULE, {"name": "DiskFull", "by": "ann"})
    closed = (await alert_events(bus, 3))[2]
    assert isinstance(closed, AlertResolved)
    assert (closed.reason, closed.by) == ("rule_deleted", "ann")
    await send(bus, "disk", 99)
    await send(bus, "cpu", 75)  # a rule still in use proves the batch before it was judged
    assert [e.type for e in await alert_events(bus, 4)] == [
        "AlertFired",
        "AlertEscalated",
        "AlertResolved",
        "AlertFired",
    ]
    stored = [e for _, e in await config_events(bus)]
    assert [type(e) for e in stored] == [RulesProvisioned, RuleCreated, RuleUpdated, RuleDeleted]
    assert isinstance(stored[1], RuleCreated) and stored[1].by == "key:admin"


async def test_file_rules_are_read_only_and_names_unique(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory, tmp_path: Path
) -> None:
    path = tmp_path / "vigil.yaml"
    await start_service(build(settings.model_copy(update={"config": path}), FILE))
    high_cpu = {"name": "HighCPU", "metric": "cpu", "warning": 1}
    with pytest.raises(
        Conflict, match=f"rule 'HighCPU' is managed by the configuration file {path}"
    ):
        await bus.request(CREATE_RULE, {"rule": high_cpu})
    with pytest.raises(Conflict, match="managed by the configuration file") as refused:
        await bus.request(UPDATE_RULE, {"name": "HighCPU", "rule": high_cpu})
    assert refused.value.field == "name"
    with pytest.raises(Conflict, match="managed by the configuration file"):
        await bus.request(DELETE_RULE, {"name": "HighCPU"})

    await bus.request(CREATE_RULE, {"rule": DISK})
    with pytest.raises(Conflict, match="exists already"):
        await bus.request(CREATE_RULE, {"rule": DISK})
    with pytest.raises(NotFound, match="no rule 'Nope'"):
        await bus.request(DELETE_RULE, {"name": "Nope"})
    with pytest.raises(InvalidInput, match="renaming"):
        await bus.request(UPDATE_RULE, {"name": "DiskFull", "rule": {**DISK, "name": "Other"}})
    with pytest.raises(InvalidInput) as invalid:
        await bus.request(CREATE_RULE, {"rule": {**DISK, "name": "x", "critical": 10}})
    assert "critical must be at or above warning" in str(invalid.value)
    unchanged = await bus.request(UPDATE_RULE, {"name": "DiskFull", "rule": DISK})
    assert unchanged["version"] == 1  # nothing to change: no event


async def test_restarts_keep_api_rules_and_provision_the_file_only_when_it_changed(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    first = await start_service(build(settings, FILE))
    await bus.request(CREATE_RULE, {"rule": DISK})
    await first.stop()

    again = await start_service(build(settings, FILE))
    assert len(await config_events(bus)) == 2  # the same file: nothing appended
    await send(bus, "disk", 90)
    (fired,) = await alert_events(bus, 1)
    assert fired.rule == "DiskFull"  # the API's rule came back from the log
    await again.stop()

    # the file now takes the API rule's name: the API rule is deleted, the file's applies
    taken = VigilConfig(rules=[*FILE.rules, RuleConfig(name="DiskFull", metric="disk", warning=50)])
    await start_service(build(settings, taken))
    stored = await config_events(bus)
    assert [type(e) for _, e in stored] == [
        RulesProvisioned,
        RuleCreated,
        RuleDeleted,
        RulesProvisioned,
    ]
    assert stored[-1][0] == "config.provisioned.alerts"
    last = stored[-1][1]
    assert isinstance(last, RulesProvisioned)
    assert [r.name for r in last.rules][-1] == "DiskFull"
    with pytest.raises(Conflict, match="managed by the configuration file"):
        await bus.request(DELETE_RULE, {"name": "DiskFull"})
