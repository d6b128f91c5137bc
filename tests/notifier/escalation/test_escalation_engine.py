"""The escalation engine against a real nats-server and SQLite, with a clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.notifier.escalation import EscalationEngine, escalation_id, event_id
from services.notifier.escalation.store import Escalation
from shared.bus import EventBus
from shared.events.base import utcnow
from shared.events.paging import (
    EscalationEvent,
    EscalationStarted,
    EscalationStepScheduled,
    EscalationStopped,
    PageTarget,
)
from shared.streams import PAGING
from tests.notifier.escalation.rig import (
    T0,
    Rig,
    acknowledged,
    fired,
    resolved,
    sqlite_engine,
)
from tests.waiting import eventually

CONTACTS = [
    {"name": "ann", "methods": [{"channel": "mail", "address": "ann@example.com"}]},
    {
        "name": "bob",
        "methods": [
            {"channel": "mail", "address": "bob@example.com"},
            {"channel": "slack-bot", "address": "U0BOB"},
        ],
    },
    {"name": "cat", "methods": [{"channel": "pager", "address": "cat-routing-key"}]},
]
# ann and bob alternate daily at 09:00 UTC from 2026-01-05: on 2026-01-06 12:00 it is bob
SCHEDULE = {
    "name": "ops",
    "layers": [
        {"name": "day", "users": ["ann", "bob"], "rotation": "daily", "start": "2026-01-05"}
    ],
}
THREE_STEPS = {
    "name": "critical",
    "steps": [
        {"delay": 0, "notify": [{"channel": "slack"}]},
        {"delay": "5m", "notify": [{"user": "ann"}]},
        {"delay": "10m", "notify": [{"schedule": "ops"}]},
    ],
}


@pytest.fixture
async def rig(bus: EventBus, tmp_path: Path) -> AsyncIterator[Rig]:
    db = sqlite_engine(tmp_path / "notifier.db")
    made = Rig(bus, db)
    made.directory.add(contacts=CONTACTS, schedules=[SCHEDULE], policies=[THREE_STEPS])
    yield made
    await made.halt()
    await db.dispose()


def positions(events: list[Any]) -> list[tuple[int, int, int]]:
    return [(e.generation, e.round, e.step) for e in events]


async def test_steps_fire_in_order_after_their_delays(rig: Rig) -> None:
    engine = await rig.engine()
    await engine.on_alert_event(fired(), "critical")
    [first] = await rig.wait_fired(1)
    assert first.targets == [PageTarget(channel="slack", via="channel")]
    assert (first.alert_id, first.fingerprint, first.rule, first.metric) == (
        "alert-1",
        "fp-1",
        "cpu-high",
        "cpu",
    )
    assert first.summary == "cpu at 97" and first.unresolved == []

    rig.clock.advance(299)
    await rig.quiet(1)
    rig.clock.advance(1)
    second = (await rig.wait_fired(2))[1]
    assert second.targets == [
        PageTarget(channel="mail", recipient="ann@example.com", user="ann", via="user:ann")
    ]
    assert second.time == T0 + timedelta(seconds=300)

    rig.clock.advance(599)
    await rig.quiet(2)
    rig.clock.advance(1)
    third = (await rig.wait_fired(3))[2]
    assert third.targets == [  # bob is on call: each of his contact methods
        PageTarget(channel="mail", recipient="bob@example.com", user="bob", via="schedule:ops"),
        PageTarget(channel="slack-bot", recipient="U0BOB", user="bob", via="schedule:ops"),
    ]
    [stopped] = await rig.wait_for("EscalationStopped")
    assert isinstance(stopped, EscalationStopped) and stopped.reason == "exhausted"

    events = await rig.events()
    ids = ("alert-1", "critical", 0)
    assert [(e.type, e.id) for e in events] == [
        ("EscalationStarted", event_id(*ids, 0, 0, "started")),
        ("EscalationStepScheduled", event_id(*ids, 0, 0, "scheduled")),
        ("EscalationStepFired", event_id(*ids, 0, 0, "fired")),
        ("EscalationStepScheduled", event_id(*ids, 0, 1, "scheduled")),
        ("EscalationStepFired", event_id(*ids, 0, 1, "fired")),
        ("EscalationStepScheduled", event_id(*ids, 0, 2, "scheduled")),
        ("EscalationStepFired", event_id(*ids, 0, 2, "fired")),
        ("EscalationStopped", event_id(*ids, 0, 0, "stopped")),
    ]
    assert {e.aggregate_id for e in events} == {escalation_id("alert-1", "critical", 0)}
    due = [e.due_at for e in events if isinstance(e, EscalationStepScheduled)]
    assert due == [T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=15)]
    # a redelivered trigger starts nothing new
    await engine.on_alert_event(fired(), "critical")
    assert len(await rig.events()) == len(events)


async def test_unresolvable_targets_are_named_and_the_step_fires_for_the_rest(rig: Rig) -> None:
    rig.directory.add(
        policies=[
            {
                "name": "mixed",
                "steps": [
                    {
                        "notify": [
                            {"user": "zed"},
                            {"schedule": "nope"},
                            {"channel": "slack"},
                            {"user": "ann"},
                            {"channel": "slack"},
                        ]
                    }
                ],
            },
            {"name": "nobody", "steps": [{"notify": [{"user": "zed"}]}]},
        ]
    )
    engine = await rig.engine()
    await engine.on_alert_event(fired("alert-1"), "mixed")
    [step] = await rig.wait_fired(1)
    assert [t.channel for t in step.targets] == ["slack", "mail"]
    assert step.unresolved == [
        "user:zed: 'zed' has no contact methods configured",
        "schedule:nope: no such schedule",
    ]
    await engine.on_alert_event(fired("alert-2"), "nobody")
    nobody = (await rig.wait_fired(2))[1]
    assert nobody.targets == [] and len(nobody.unresolved) == 1  # still recorded


async def test_acknowledge_stops_it(rig: Rig) -> None:
    engine = await rig.engine()
    await engine.on_alert_event(fired(), "critical")
    await rig.wait_fired(1)
    rig.clock.advance(60)
    await engine.on_alert_event(acknowledged("alert-1", rig.clock.now()), None)
    [stopped] = await rig.wait_for("EscalationStopped")
    assert isinstance(stopped, EscalationStopped)
    assert (stopped.reason, stopped.by, stopped.generation) == ("acknowledged", "ann", 0)
    rig.clock.advance(3600)
    await rig.quiet(1)
    assert not [e for e in await rig.events() if e.generation > 0]  # no ack_timeout


async def test_an_acknowledgement_not_followed_by_a_resolve_escalates_again(rig: Rig) -> None:
    rig.directory.add(policies=[{**THREE_STEPS, "ack_timeout": "10m"}])
    engine = await rig.engine()
    await engine.on_alert_event(fired(), "critical")
    await rig.wait_fired(1)
    rig.clock.advance(30)
    ack = acknowledged("alert-1", rig.clock.now())
    await engine.on_alert_event(ack, None)
    await engine.on_alert_event(ack, None)  # redelivered: arms nothing more
    started = await rig.wait_for("EscalationStarted", 2)
    assert [e.generation for e in started] == [0, 1]
    assert started[1].causation_id == ack.id
    scheduled = [e for e in await rig.events() if isinstance(e, EscalationStepScheduled)]
    assert scheduled[-1].generation == 1
    assert scheduled[-1].due_at == T0 + timedelta(seconds=30 + 600)

    rig.clock.advance(599)
    await rig.quiet(1)
    rig.clock.advance(1)
    again = (await rig.wait_fired(2))[1]
    assert (again.generation, again.round, again.step) == (1, 0, 0)
    assert again.aggregate_id == escalation_id("alert-1", "critical", 1)
    assert again.targets == [PageTarget(channel="slack", via="channel")]
    # generation 1 goes on through its steps like the first one
    rig.clock.advance(300)
    assert positions((await rig.wait_fired(3))[2:]) == [(1, 0, 1)]


async def test_a_resolve_within_the_ack_timeout_cancels_the_re_escalation(rig: Rig) -> None:
    rig.directory.add(policies=[{**THREE_STEPS, "ack_timeout": "10m"}])
    engine = await rig.engine()
    await engine.on_alert_event(fired(), "critical")
    await rig.wait_fired(1)
    await engine.on_alert_event(acknowledged("alert-1", T0 + timedelta(seconds=30)), None)
    await rig.wait_for("EscalationStarted", 2)
    rig.clock.advance(120)
    await engine.on_alert_event(resolved("alert-1", rig.clock.now()), None)
    stops = await rig.wait_for("EscalationStopped", 2)
    assert [(e.generation, e.reason) for e in stops if isinstance(e, EscalationStopped)] == [
        (0, "acknowledged"),
        (1, "resolved"),
    ]
    rig.clock.advance(3600)
    await rig.quiet(1)


async def test_resolve_stops_everything_and_a_late_trigger_starts_nothing(rig: Rig) -> None:
    rig.directory.add(policies=[{**THREE_STEPS, "name": "second"}])
    engine = await rig.engine()
    await engine.on_alert_event(fired(), "critical")
    await engine.on_alert_event(fired(), "second")
    await rig.wait_fired(2)
    rig.clock.advance(10)
    await engine.on_alert_event(resolved("alert-1", rig.clock.now()), None)
    stops = await rig.wait_for("EscalationStopped", 2)
    assert sorted((e.policy, e.reason) for e in stops if isinstance(e, EscalationStopped)) == [
        ("critical", "resolved"),
        ("second", "resolved"),
    ]
    count = len(await rig.events())
    await engine.on_alert_event(fired(), "critical")  # redelivered after the resolve
    await engine.on_alert_event(acknowledged("alert-1", rig.clock.now()), None)
    rig.clock.advance(3600)
    await rig.quiet(2)
    assert len(await rig.events()) == count


async def test_events_of_one_alert_out_of_order_page_nobody_after_the_ack(rig: Rig) -> None:
    engine = await rig.engine()
    ack = acknowledged("alert-1", T0 + timedelta(seconds=5))
    # delivered concurrently and the acknowledgement first: the trigger is late
    await asyncio.gather(
        engine.on_alert_event(ack, None), engine.on_alert_event(fired(), "critical")
    )
    await rig.quiet(0)
    assert await rig.events() == []
    # a second alert: fired and acknowledged concurrently, in order
    await asyncio.gather(
        engine.on_alert_event(fired("alert-2"), "critical"),
        engine.on_alert_event(acknowledged("alert-2", T0), None),
    )
    [stopped] = await rig.wait_for("EscalationStopped")
    assert isinstance(stopped, EscalationStopped)
    assert (stopped.alert_id, stopped.reason) == ("alert-2", "acknowledged")
    rig.clock.advance(3600)
    await rig.quiet(len(await rig.fired()))


async def test_repeat_runs_the_steps_again_then_is_exhausted(rig: Rig) -> None:
    rig.directory.add(
        policies=[
            {
                "name": "twice",
                "repeat": 2,
                "steps": [
                    {"notify": [{"channel": "slack"}]},
                    {"delay": "1m", "notify": [{"user": "ann"}]},
                ],
            }
        ]
    )
    engine = await rig.engine()
    await engine.on_alert_event(fired(), "twice")
    for count in range(1, 7):
        await rig.wait_fired(count)
        await rig.quiet(count)
        rig.clock.advance(60)
    steps = await rig.fired()
    assert positions(steps) == [(0, r, s) for r in range(3) for s in range(2)]
    # a repeated round waits the last step's delay, as the first step has none
    assert [s.time - T0 for s in steps] == [timedelta(minutes=m) for m in range(6)]
    [stopped] = await rig.wait_for("EscalationStopped")
    assert isinstance(stopped, EscalationStopped) and stopped.reason == "exhausted"


class Crash(BaseException):
    """The process dies: nothing after this point runs."""


class CrashAfterPublishing(EscalationEngine):
    """Dies right after step 1's StepFired is on the stream, before the table knows it."""

    async def _publish(self, event: EscalationEvent) -> None:
        await self.bus().publish(f"paging.events.{event.aggregate_id}", event)
        if event.type == "EscalationStepFired" and getattr(event, "step", None) == 1:
            raise Crash
        await self.store.fold(event)


class CrashBeforeScheduling(EscalationEngine):
    """Dies after step 1 fired and was folded, before step 2 is scheduled."""

    async def _publish(self, event: EscalationEvent) -> None:
        if event.type == "EscalationStepScheduled" and getattr(event, "step", None) == 2:
            raise Crash
        await super()._publish(event)


@pytest.mark.parametrize("crashing", [CrashAfterPublishing, CrashBeforeScheduling])
async def test_a_restart_mid_way_neither_skips_nor_repeats_a_step(
    rig: Rig, crashing: type[EscalationEngine]
) -> None:
    engine = await rig.engine(crashing)
    await engine.on_alert_event(fired(), "critical")
    await rig.wait_fired(1)
    rig.clock.advance(300)
    await rig.wait_fired(2)
    with pytest.raises(Crash):
        await asyncio.wait_for(rig.tasks[0], 2)
    rig.tasks.clear()

    # down for an hour, beyond the stream's duplicate window (shortened here to see
    # that the engine does not rely on it): step 2 is long due
    info = await rig.bus.js.stream_info(PAGING.name)
    await rig.bus.js.update_stream(replace(info.config, duplicate_window=0.1))
    await asyncio.sleep(0.3)
    rig.clock.advance(3600)
    await rig.engine()
    steps = await rig.wait_fired(3)
    await rig.wait_for("EscalationStopped")
    await rig.quiet(3)
    ids = ("alert-1", "critical", 0)
    events = await rig.events()
    assert [e.id for e in events] == [
        event_id(*ids, 0, 0, "started"),
        event_id(*ids, 0, 0, "scheduled"),
        event_id(*ids, 0, 0, "fired"),
        event_id(*ids, 0, 1, "scheduled"),
        event_id(*ids, 0, 1, "fired"),
        event_id(*ids, 0, 2, "scheduled"),
        event_id(*ids, 0, 2, "fired"),
        event_id(*ids, 0, 0, "stopped"),
    ]
    assert positions(steps) == [(0, 0, 0), (0, 0, 1), (0, 0, 2)]
    # the overdue step fired at once on start, not at some later tick of the clock
    assert steps[2].time == T0 + timedelta(seconds=3900)


async def test_a_crash_before_the_first_page_is_folded_is_finished_by_the_redelivery(
    rig: Rig,
) -> None:
    """The first page is published before the table is written: the alert event, not
    acknowledged by the crashed notifier, comes again and the engine carries on from
    what the stream has."""
    crashed = await rig.engine()

    async def crash(*_: Any, **__: Any) -> None:
        raise Crash

    crashed.store.fold_all = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await crashed.on_alert_event(fired(), "critical")
    await rig.halt()
    assert positions(await rig.fired()) == [(0, 0, 0)]

    engine = await rig.engine()
    await engine.on_alert_event(fired(), "critical")  # the redelivered trigger
    await rig.wait_for("EscalationStepScheduled", 2)
    rig.clock.advance(300)
    steps = await rig.wait_fired(2)
    assert positions(steps) == [(0, 0, 0), (0, 0, 1)]
    await rig.wait_for("EscalationStepScheduled", 3)  # what follows the step, just after it
    ids = ("alert-1", "critical", 0)
    assert [e.id for e in await rig.events()] == [
        event_id(*ids, 0, 0, "started"),
        event_id(*ids, 0, 0, "scheduled"),
        event_id(*ids, 0, 0, "fired"),
        event_id(*ids, 0, 1, "scheduled"),
        event_id(*ids, 0, 1, "fired"),
        event_id(*ids, 0, 2, "scheduled"),
    ]


async def test_an_override_changes_who_receives_the_step(rig: Rig) -> None:
    rig.directory.add(
        policies=[{"name": "oncall", "steps": [{"notify": [{"schedule": "ops"}]}]}],
    )
    engine = await rig.engine()
    await engine.on_alert_event(fired("before"), "oncall")
    [before] = await rig.wait_fired(1)
    assert {t.user for t in before.targets} == {"bob"}

    rig.directory.add(
        schedules=[
            {
                **SCHEDULE,
                "overrides": [
                    {"user": "cat", "start": "2026-01-06T11:00", "end": "2026-01-06T15:00"}
                ],
            }
        ]
    )
    await engine.on_alert_event(fired("during", rig.clock.now()), "oncall")
    during = (await rig.wait_fired(2))[1]
    assert during.targets == [
        PageTarget(channel="pager", recipient="cat-routing-key", user="cat", via="schedule:ops")
    ]


async def test_rebuild_recreates_the_table_from_the_stream(rig: Rig) -> None:
    engine = await rig.engine()
    await engine.on_alert_event(fired(), "critical")
    await rig.wait_fired(1)
    rig.clock.advance(300)
    await rig.wait_fired(2)

    async def step_3_scheduled() -> list[Escalation] | None:
        running = await engine.store.running()
        return running if running and running[0].scheduled == (0, 2) else None

    before = await eventually(step_3_scheduled, what="step 3 scheduled in the table")
    await rig.halt()
    await engine.rebuild()
    after = await engine.store.running()
    assert after == before and after[0].fired == (0, 1) and after[0].scheduled == (0, 2)
    assert isinstance((await rig.events())[0], EscalationStarted)


async def test_timers_are_accurate_on_the_real_clock_across_a_restart(
    bus: EventBus, tmp_path: Path
) -> None:
    db = sqlite_engine(tmp_path / "real.db")
    made = Rig(bus, db)
    made.directory.add(
        contacts=CONTACTS,
        policies=[
            {
                "name": "quick",
                "steps": [
                    {"notify": [{"channel": "slack"}]},
                    {"delay": "1.5s", "notify": [{"channel": "slack"}]},
                    {"delay": "2s", "notify": [{"channel": "slack"}]},
                ],
            }
        ],
    )
    real = made.clock
    real.now = utcnow  # type: ignore[method-assign]
    try:
        engine = await made.engine()
        await engine.on_alert_event(fired(at=utcnow()), "quick")
        steps = await made.wait_fired(2, within_s=3)
        scheduled = [e for e in await made.events() if isinstance(e, EscalationStepScheduled)]
        assert abs((steps[1].time - scheduled[1].due_at).total_seconds()) < 1.0
        await made.halt()  # down while step 2 comes due
        await asyncio.sleep(2.5)
        back = utcnow()
        await made.engine()
        steps = await made.wait_fired(3, within_s=1)
        scheduled = [e for e in await made.events() if isinstance(e, EscalationStepScheduled)]
        assert scheduled[2].due_at < back  # it came due while the engine was down
        assert (steps[2].time - back).total_seconds() < 1.0  # and fired as soon as it was back
    finally:
        await made.halt()
        await db.dispose()
