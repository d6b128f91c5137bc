"""The synthetic service against a real nats-server and a real HTTP target."""

from __future__ import annotations

import pytest

from services.synthetic.app import build
from services.synthetic.domain import check_id_for
from shared import subjects
from shared.bus import EventBus
from shared.commands import CONFIGURE_CHECK, REMOVE_CHECK, RUN_CHECK
from shared.config import CheckConfig, VigilConfig
from shared.errors import InvalidInput, NotFound
from shared.events import (
    CheckConfigured,
    CheckRemoved,
    CheckRunRecorded,
    Event,
    SamplesIngested,
    decode_event,
)
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.synthetic.conftest import HttpTarget
from tests.waiting import eventually


async def runs(bus: EventBus) -> list[CheckRunRecorded]:
    found = [r.event async for r in bus.replay("SYNTHETIC", f"{subjects.CHECK_RESULTS}.>")]
    return [e for e in found if isinstance(e, CheckRunRecorded)]


async def definition_events(bus: EventBus) -> list[Event]:
    return [r.event async for r in bus.replay("SYNTHETIC", f"{subjects.CHECK_DEFINITIONS}.>")]


async def sample_batches(bus: EventBus) -> list[SamplesIngested]:
    found = [r.event async for r in bus.replay("METRICS", subjects.samples("synthetic"))]
    return [e for e in found if isinstance(e, SamplesIngested)]


def api_check(url: str, **overrides: object) -> dict[str, object]:
    return {"name": "api", "url": url, "enabled": False, "timeout_s": 2} | overrides


async def test_target_up_then_down_is_recorded_and_raises_the_down_sample(
    settings: Settings, bus: EventBus, start_service: RuntimeFactory, target: HttpTarget
) -> None:
    check = CheckConfig(name="home", url=target.url, interval=0.5, failures_before_alert=2)
    await start_service(build(settings, VigilConfig(checks=[check])))

    async def runs_at_least(n: int) -> bool:
        return len(await runs(bus)) >= n

    await eventually(lambda: runs_at_least(2))
    target.status = 500

    async def three_failures() -> bool:
        return any(r.consecutive_failures >= 3 for r in await runs(bus))

    await eventually(three_failures)
    recorded = await runs(bus)
    ups = [r for r in recorded if r.ok]
    downs = [r for r in recorded if not r.ok]
    assert len(ups) >= 2
    assert {(r.status_code, r.consecutive_failures, r.error) for r in ups} == {(200, 0, "")}
    assert all(r.latency_ms > 0 for r in recorded)
    assert [r.consecutive_failures for r in downs[:3]] == [1, 2, 3]
    assert {(r.status_code, r.error) for r in downs} == {(500, "expected HTTP 200, got 500")}
    assert {(r.name, r.trigger, r.aggregate_id) for r in recorded} == {
        ("home", "schedule", check_id_for("home"))
    }
    assert [r.version for r in recorded] == list(range(1, len(recorded) + 1))

    async def samples_for_all_runs() -> bool:
        return len(await sample_batches(bus)) >= len(recorded)

    await eventually(samples_for_all_runs)
    by_run = {b.causation_id: b for b in await sample_batches(bus)}
    observed = []
    for run in recorded:
        values = {s["name"]: s["value"] for s in by_run[run.id].samples}
        labels = {tuple(s["labels"].items()) for s in by_run[run.id].samples}
        assert labels == {(("check", "home"),)}
        assert values["synthetic_check_latency_ms"] == run.latency_ms
        observed.append((values["synthetic_check_up"], values["synthetic_check_down"]))
    failures = [r.consecutive_failures for r in recorded]
    assert observed == [(0 if f else 1, 1 if f >= 2 else 0) for f in failures]
    assert observed[-1] == (0, 1)


async def test_config_reconcile_adds_nothing_on_restart(
    settings: Settings, bus: EventBus, start_service: RuntimeFactory, target: HttpTarget
) -> None:
    config = VigilConfig(checks=[CheckConfig(name="home", url=target.url, interval=3600)])
    first = await start_service(build(settings, config))
    await first.stop()
    second = await start_service(build(settings, config))
    await second.stop()
    [configured] = await definition_events(bus)
    assert isinstance(configured, CheckConfigured)
    assert (configured.name, configured.source, configured.version) == ("home", "file", 1)

    changed = VigilConfig(checks=[CheckConfig(name="home", url=target.url, interval=600)])
    third = await start_service(build(settings, changed))
    await third.stop()
    await start_service(build(settings, VigilConfig()))
    events = await definition_events(bus)
    assert [(type(e).__name__, e.version) for e in events] == [
        ("CheckConfigured", 1),
        ("CheckConfigured", 2),
        ("CheckRemoved", 3),
    ]
    assert isinstance(events[1], CheckConfigured) and events[1].interval_s == 600


async def test_run_check_on_request(
    settings: Settings, bus: EventBus, start_service: RuntimeFactory, target: HttpTarget
) -> None:
    await start_service(build(settings, VigilConfig()))
    configured = await bus.request(CONFIGURE_CHECK, api_check(target.url))
    check_id = configured["aggregate_id"]
    assert configured["version"] == 1 and configured["stream"] == "SYNTHETIC"

    reply = await bus.request(RUN_CHECK, {"check_id": check_id})
    assert (reply["ok"], reply["status_code"], reply["error"]) == (True, 200, "")
    assert (reply["trigger"], reply["consecutive_failures"], reply["name"]) == ("manual", 0, "api")
    assert reply["latency_ms"] > 0
    stored = await bus.js.get_msg("SYNTHETIC", seq=reply["seq"])
    assert stored.data is not None
    run = decode_event(stored.data)
    assert isinstance(run, CheckRunRecorded)
    assert (run.id, run.aggregate_id, run.trigger) == (reply["event_id"], check_id, "manual")
    assert target.hits == 1  # disabled: only the manual run

    target.delay_s = 1.0
    await bus.request(CONFIGURE_CHECK, api_check(target.url, timeout_s=0.2))
    slow = await bus.request(RUN_CHECK, {"check_id": check_id})
    assert (slow["ok"], slow["status_code"], slow["error"]) == (False, None, "timed out after 0.2s")
    assert slow["consecutive_failures"] == 1

    with pytest.raises(NotFound):
        await bus.request(RUN_CHECK, {"check_id": "no-such-check"})


async def test_configure_validates_updates_by_name_and_is_idempotent(
    settings: Settings, bus: EventBus, start_service: RuntimeFactory, target: HttpTarget
) -> None:
    await start_service(build(settings, VigilConfig()))
    with pytest.raises(InvalidInput) as missing:
        await bus.request(CONFIGURE_CHECK, {"name": "api"})
    assert missing.value.field == "url"
    with pytest.raises(InvalidInput) as too_fast:
        await bus.request(CONFIGURE_CHECK, api_check(target.url, interval_s=0.1))
    assert too_fast.value.field == "interval_s"
    with pytest.raises(InvalidInput) as extra:
        await bus.request(CONFIGURE_CHECK, api_check(target.url, retries=3))
    assert extra.value.field == "retries"

    first = await bus.request(CONFIGURE_CHECK, api_check(target.url))
    again = await bus.request(CONFIGURE_CHECK, api_check(target.url))
    assert again == first
    updated = await bus.request(CONFIGURE_CHECK, api_check(target.url, expected_status=204))
    assert (updated["aggregate_id"], updated["version"]) == (first["aggregate_id"], 2)
    assert updated["seq"] > first["seq"]
    assert len(await definition_events(bus)) == 2


async def test_the_scheduler_picks_up_api_changes_at_once(
    settings: Settings, bus: EventBus, start_service: RuntimeFactory, target: HttpTarget
) -> None:
    await start_service(build(settings, VigilConfig()))
    configured = await bus.request(
        CONFIGURE_CHECK, api_check(target.url, enabled=True, interval_s=0.5)
    )

    async def ran_twice() -> bool:
        return len(await runs(bus)) >= 2

    await eventually(ran_twice, within_s=5.0)
    removed = await bus.request(REMOVE_CHECK, {"check_id": configured["aggregate_id"]})
    assert removed["version"] == 2
    events = await definition_events(bus)
    assert isinstance(events[-1], CheckRemoved)
    with pytest.raises(NotFound):
        await bus.request(RUN_CHECK, {"check_id": configured["aggregate_id"]})
    with pytest.raises(NotFound):
        await bus.request(REMOVE_CHECK, {"check_id": configured["aggregate_id"]})
    settled = len(await runs(bus))
    hits = target.hits
    probe = await bus.request(CONFIGURE_CHECK, api_check(target.url, name="other"))
    await bus.request(RUN_CHECK, {"check_id": probe["aggregate_id"]})
    # The removed check no longer runs: only the one manual run was added meanwhile.
    assert len(await runs(bus)) == settled + 1
    assert target.hits == hits + 1


async def test_consecutive_failures_survive_a_restart(
    settings: Settings, bus: EventBus, start_service: RuntimeFactory, target: HttpTarget
) -> None:
    target.status = 503
    first = await start_service(build(settings, VigilConfig()))
    check_id = (await bus.request(CONFIGURE_CHECK, api_check(target.url)))["aggregate_id"]
    for expected in (1, 2):
        reply = await bus.request(RUN_CHECK, {"check_id": check_id})
        assert reply["consecutive_failures"] == expected
    await first.stop()

    await start_service(build(settings, VigilConfig()))
    reply = await bus.request(RUN_CHECK, {"check_id": check_id})
    assert (reply["consecutive_failures"], reply["version"]) == (3, 3)
    target.status = 200
    reply = await bus.request(RUN_CHECK, {"check_id": check_id})
    assert (reply["ok"], reply["consecutive_failures"]) == (True, 0)
