"""Silences and maintenance windows as the suppressor sees them: stamped on every alert
event, and an open alert's reasons kept up to date as they begin and end."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from shared import subjects
from shared.bus import EventBus
from shared.config import RuleConfig, VigilConfig
from shared.events import AlertSuppressionChanged, Sample, SamplesIngested
from shared.settings import Settings
from tests.alerts.suppression_rig import T0, Rig, Span, SpanBook, kinds
from tests.conftest import RuntimeFactory
from tests.waiting import eventually

CONFIG = VigilConfig(rules=[RuleConfig(name="HighCPU", metric="cpu", warning=70, critical=90)])
HOUR = timedelta(hours=1)


@pytest.fixture
def rig(bus: EventBus, settings: Settings, start_service: RuntimeFactory) -> Rig:
    return Rig(bus, settings, start_service)


async def test_a_silenced_alert_fires_stamped_and_pages_when_the_silence_ends(rig: Rig) -> None:
    # given a silence on web-1 for an hour
    await rig.book.add(Span("s-1", {"host": "web-1"}, T0, T0 + HOUR, "deploy"))
    service = await rig.start(CONFIG)
    # when web-1 and web-2 go hot
    await rig.samples(95, host="web-1")
    await rig.samples(95, host="web-2")
    silenced, loud = await rig.until(2)
    # then both fire; only web-1's says it pages nobody, and why
    assert (silenced.type, silenced.labels) == ("AlertFired", {"host": "web-1"})
    (ref,) = silenced.suppressed_by
    assert (ref.kind, ref.id, ref.detail, ref.until) == ("silence", "s-1", "deploy", T0 + HOUR)
    assert loud.suppressed_by == []
    # when the hour is over
    await rig.move(3600, service)
    events = await rig.until(3)
    changed = events[2]
    # then web-1's alert is told it pages now, once, as firing
    assert isinstance(changed, AlertSuppressionChanged)
    assert changed.aggregate_id == silenced.aggregate_id
    assert (changed.suppressed_by, changed.previous, changed.status) == ([], [ref], "firing")
    assert changed.version == 2
    await rig.move(60, service)
    await rig.samples(96, host="web-1")
    await rig.samples(20, host="web-1")
    events = await rig.until(4)
    assert kinds(events[3:]) == [("AlertResolved", [])]


async def test_a_silence_made_and_expired_while_an_alert_fires(rig: Rig) -> None:
    service = await rig.start(CONFIG)
    await rig.samples(95)
    (fired,) = await rig.until(1)
    assert fired.suppressed_by == []
    # when a silence is made for it
    await rig.book.add(Span("s-2", {"alertname": "HighCPU", "severity": "critical"}, T0, T0 + HOUR))
    events = await rig.until(2)
    assert kinds(events) == [("AlertFired", []), ("AlertSuppressionChanged", ["silence"])]
    # when it is expired early
    await rig.book.remove("s-2")
    events = await rig.until(3)
    assert kinds(events[2:]) == [("AlertSuppressionChanged", [])]
    # the timer passing the silence's old end changes nothing more
    await rig.move(2 * 3600, service)
    await rig.samples(20)
    events = await rig.until(4)
    assert kinds(events[3:]) == [("AlertResolved", [])]


async def test_a_pending_silence_begins_and_ends_by_the_clock(rig: Rig) -> None:
    await rig.book.add(Span("later", {"host": "web-1"}, T0 + HOUR, T0 + 2 * HOUR))
    service = await rig.start(CONFIG)
    await rig.samples(80)
    (fired,) = await rig.until(1)
    assert fired.suppressed_by == []  # not yet
    await rig.move(3600, service)
    events = await rig.until(2)
    assert kinds(events[1:]) == [("AlertSuppressionChanged", ["silence"])]
    await rig.move(3600, service)
    events = await rig.until(3)
    assert kinds(events[2:]) == [("AlertSuppressionChanged", [])]


async def test_a_maintenance_window_mutes_what_fires_inside_and_what_still_fires_pages_once(
    rig: Rig,
) -> None:
    # given a window over the web hosts from 02:30 to 03:00, and one alert firing before
    windows = SpanBook(kind="maintenance")
    window = Span("sunday-patching", {"host": "web-1"}, T0 + timedelta(minutes=30), T0 + HOUR)
    await windows.add(window)
    service = await rig.start(CONFIG, windows)
    await rig.samples(80)
    await rig.until(1)
    # when the window begins, the alert stops paging; an escalation inside it is muted too
    await rig.move(30 * 60, service)
    await rig.until(2)
    await rig.samples(95)
    events = await rig.until(3)
    assert kinds(events) == [
        ("AlertFired", []),
        ("AlertSuppressionChanged", ["maintenance"]),
        ("AlertEscalated", ["maintenance"]),
    ]
    assert events[2].suppressed_by[0].until == T0 + HOUR
    # when it ends with the alert still firing, it pages once; nothing more after
    await rig.move(30 * 60, service)
    events = await rig.until(4)
    assert kinds(events[3:]) == [("AlertSuppressionChanged", [])]
    assert events[3].severity == "critical"
    await rig.move(3600, service)
    await rig.samples(95)
    await rig.samples(10)
    events = await rig.until(5)
    assert kinds(events[4:]) == [("AlertResolved", [])]


async def test_an_alert_resolved_while_silenced_is_not_changed_when_the_silence_ends(
    rig: Rig,
) -> None:
    await rig.book.add(Span("s-3", {"host": "web-1"}, T0, T0 + HOUR))
    service = await rig.start(CONFIG)
    await rig.samples(95, 10)
    events = await rig.until(2)
    assert kinds(events) == [("AlertFired", ["silence"]), ("AlertResolved", ["silence"])]
    await rig.move(3600, service)
    await rig.samples(20)  # a batch after the timer: the evaluator has run after it
    await eventually(lambda: service.suppressor.next_deadline() is None, what="no deadline")
    assert len(await rig.events()) == 2


async def test_acknowledged_alerts_are_told_too(rig: Rig) -> None:
    await rig.book.add(Span("s-4", {"host": "web-1"}, T0, T0 + HOUR))
    service = await rig.start(CONFIG)
    await rig.samples(80)
    (fired,) = await rig.until(1)
    await service.commands.acknowledge({"alert_id": fired.aggregate_id, "by": "ann"})
    await rig.move(3600, service)
    events = await rig.until(3)
    assert kinds(events) == [
        ("AlertFired", ["silence"]),
        ("AlertAcknowledged", ["silence"]),
        ("AlertSuppressionChanged", []),
    ]
    changed = events[2]
    assert isinstance(changed, AlertSuppressionChanged)
    assert changed.status == "acknowledged"


async def test_a_silence_that_ended_while_the_service_was_down_pages_once_at_start(
    rig: Rig,
) -> None:
    await rig.book.add(Span("s-5", {"host": "web-1"}, T0, T0 + HOUR))
    await rig.start(CONFIG)
    await rig.samples(80)
    await rig.until(1)
    # the service goes away, and its silence ends meanwhile
    await rig.stop_all()
    rig.clock.advance(2 * 3600)
    # when it starts again
    await rig.start(CONFIG)
    events = await rig.until(2)
    assert kinds(events) == [("AlertFired", ["silence"]), ("AlertSuppressionChanged", [])]
    # and a third start has nothing left to say
    await rig.stop_all()
    third = await rig.start(CONFIG)
    async with third.writer.lock:
        assert await third.suppressor.reconcile() == 0
    assert len(await rig.events()) == 2


async def test_a_silence_over_many_alerts_reaches_each_while_samples_keep_flowing(
    rig: Rig,
) -> None:
    service = await rig.start(CONFIG)
    hosts = [f"h-{n:03}" for n in range(250)]
    batch = SamplesIngested(
        aggregate_id="test",
        samples=[Sample(name="cpu", value=80, labels={"host": h}) for h in hosts],
        received_at=time.time(),
    )
    await rig.bus.publish(subjects.samples("test"), batch)
    await rig.until(250)
    await rig.book.add(Span("wide", {"alertname": "HighCPU"}, T0, T0 + HOUR))
    await rig.samples(95, host="h-000")  # evaluated between the suppressor's batches
    events = await rig.until(500)
    await asyncio.sleep(0.2)
    events = await rig.events()
    # each alert was told once; h-000 may have escalated first, stamped already
    told = [e for e in events[250:] if e.type in ("AlertSuppressionChanged", "AlertEscalated")]
    assert all([r.id for r in e.suppressed_by] == ["wide"] for e in told)
    assert sorted(e.labels["host"] for e in told if e.type != "AlertEscalated") in (
        hosts,
        hosts[1:],
    )
    assert len(events) == 500 + (len(told) - 250)
    assert len(service.suppressor.stamps) == 250 and all(
        [r.id for r in refs] == ["wide"] for refs in service.suppressor.stamps.values()
    )
