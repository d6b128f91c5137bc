"""Log rules on a real nats-server: lines on LOGS counted over a sliding window fire,
escalate and resolve through the alert log (silences and the notifier as for any alert),
each line counted once across redeliveries and restarts; a bad rule names its field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from services.alerts.app import AlertsService, build
from services.alerts.logcount import LineSelector, WindowCount
from shared import subjects
from shared.bus import EventBus
from shared.commands import CREATE_RULE, CREATE_SILENCE, EXPLAIN_LABELS, RESOLVE_ALERT
from shared.config import ConfigError, VigilConfig, parse_config
from shared.consumer import Delivery
from shared.errors import InvalidInput
from shared.events import (
    AlertEscalated,
    AlertEvent,
    AlertFired,
    AlertResolved,
    LogEntry,
    LogsIngested,
)
from shared.ruleconfig import LogSelector, RuleConfig
from shared.settings import Settings
from tests.alerts.suppression_rig import Clock, Rig
from tests.conftest import RuntimeFactory
from tests.waiting import caught_up

API_ERRORS: dict[str, Any] = {
    "name": "ApiErrors",
    "logs": {"level": ["error", "fatal"], "service": "api", "by": ["host"]},
    "window": "1m",
    "warning": 5,
    "critical": 10,
    "annotations": {"summary": "{{ value }} errors on {{ labels.host }}"},
}


def config(*rules: dict[str, Any], **more: Any) -> VigilConfig:
    return VigilConfig.model_validate({"rules": list(rules), **more})


def line(message: str, level: str = "error", service: str = "api", **labels: str) -> LogEntry:
    return LogEntry(message=message, level=level, service=service, labels=labels)  # type: ignore[typeddict-item]


def batch(at: datetime, *entries: LogEntry) -> LogsIngested:
    return LogsIngested(aggregate_id="test", entries=list(entries), received_at=at.timestamp())


def errors(count: int, host: str = "web-1") -> list[LogEntry]:
    return [line(f"request {n} failed: timeout", host=host) for n in range(count)]


async def send(bus: EventBus, event: LogsIngested) -> int:
    return await bus.publish(subjects.log_entries("test"), event)


@pytest.fixture
def rig(bus: EventBus, settings: Settings, start_service: RuntimeFactory) -> Rig:
    # one clock, near real time, for the alert events, the silences and the windows
    return Rig(bus, settings, start_service, Clock(datetime.now(UTC).replace(microsecond=0)))


async def alert_events(rig: Rig, count: int) -> list[AlertEvent]:
    return await rig.until(count)


async def test_lines_fire_escalate_and_resolve_once_the_window_has_passed(rig: Rig) -> None:
    await rig.start(config(API_ERRORS))
    now = rig.clock.now()
    noise = [
        line("request failed", level="info", host="web-1"),  # another level
        line("request failed", service="web", host="web-1"),  # another service
    ]
    await send(rig.bus, batch(now, *errors(4), *noise))
    await caught_up(rig.bus, "alerts-logs", "LOGS")
    assert await rig.events() == []  # 4 of 5: nothing yet

    rig.clock.advance(1)
    await send(rig.bus, batch(rig.clock.now(), *errors(1), *errors(3, host="web-2")))
    [fired] = await alert_events(rig, 1)
    assert isinstance(fired, AlertFired)
    assert (fired.rule, fired.metric, fired.severity, fired.value, fired.threshold) == (
        "ApiErrors",
        "log_lines",
        "warning",
        5,
        5,
    )
    assert fired.labels == {"service": "api", "host": "web-1"}
    assert fired.summary == "5 errors on web-1"
    assert fired.source_seq == 0  # not a METRICS position

    rig.clock.advance(1)
    await send(rig.bus, batch(rig.clock.now(), *errors(5)))
    escalated = (await alert_events(rig, 2))[1]
    assert isinstance(escalated, AlertEscalated)
    assert (escalated.severity, escalated.value) == ("critical", 10)

    # no more lines: once the minute has passed, the timer finds the count back at 0
    rig.clock.advance(61)
    resolved = (await alert_events(rig, 3))[2]
    assert isinstance(resolved, AlertResolved)
    assert (resolved.aggregate_id, resolved.reason, resolved.value) == (
        fired.aggregate_id,
        "recovered",
        0,
    )
    # web-2 (3 lines) never reached the threshold
    assert len(await rig.events()) == 3


async def test_text_and_labels_select_the_lines_and_for_holds_without_new_lines(
    rig: Rig,
) -> None:
    rule = {
        "name": "Refused",
        "logs": {"q": '"connection refused" OR timeout -retrying', "labels": {"dc": "eu"}},
        "window": "10m",
        "warning": 3,
        "for": "30s",
    }
    service = await rig.start(config(rule))
    now = rig.clock.now()
    await send(
        rig.bus,
        batch(
            now,
            line("Connection refused by db-1", dc="eu"),
            line("upstream timeout", level="warn", service="web", dc="eu"),
            line("connection was refused", dc="eu"),  # not the phrase
            line("timeout, retrying", dc="eu"),  # -retrying
            line("connection refused", dc="us"),  # another dc
            line("TIMEOUT after 5s", dc="eu"),
        ),
    )
    await caught_up(rig.bus, "alerts-logs", "LOGS")
    assert await rig.events() == []  # 3 lines, but not yet for 30 s
    explained = await rig.bus.request(EXPLAIN_LABELS, {"rule": "Refused", "labels": {}})
    assert explained["logs"]["count"] == 3 and explained["logs"]["window_s"] == 600
    assert "3 in the last 600 s" in explained["rule"]["why"]
    assert service.logs.rules["Refused"].series  # counted, held

    rig.clock.advance(31)  # the hold completes with no new line: the timer fires it
    [fired] = await alert_events(rig, 1)
    assert isinstance(fired, AlertFired) and fired.value == 3 and fired.labels == {}


async def test_a_redelivered_batch_is_judged_again_but_never_counted_twice(
    rig: Rig,
) -> None:
    service = await rig.start(config({**API_ERRORS, "warning": 6, "critical": None}))
    now = rig.clock.now()
    first = batch(now, *errors(4))

    def delivery(seq: int, times: int) -> Delivery:
        return Delivery("LOGS", "logs.entries.test", seq, times, "alerts-logs")

    await service.logs.handle(first, delivery(1, 1))
    await service.logs.handle(first, delivery(1, 2))  # redelivered: still 4, not 8
    await service.logs.handle(first, delivery(1, 3))
    assert await rig.events() == []
    counts = [
        s.window.count(now.timestamp()) for s in service.logs.rules["ApiErrors"].series.values()
    ]
    assert counts == [4]

    second = batch(now + timedelta(seconds=1), *errors(2))
    await service.logs.handle(second, delivery(2, 1))
    await service.logs.handle(second, delivery(2, 2))  # the transition is on the log once
    [fired] = await rig.until(1)
    assert isinstance(fired, AlertFired) and fired.value == 6
    assert len(await rig.events()) == 1


async def test_a_restart_keeps_the_counts_of_the_window(rig: Rig) -> None:
    rule = {**API_ERRORS, "warning": 6, "critical": None}
    await rig.start(config(rule))
    now = rig.clock.now()
    await send(rig.bus, batch(now, *errors(4)))
    await caught_up(rig.bus, "alerts-logs", "LOGS")
    await rig.stop_all()

    again = await rig.start(config(rule))
    [series] = again.logs.rules["ApiErrors"].series.values()
    assert series.window.count(now.timestamp()) == 4  # restored from LOGS
    await send(rig.bus, batch(now + timedelta(seconds=1), *errors(2)))
    [fired] = await rig.until(1)
    assert isinstance(fired, AlertFired) and fired.value == 6
    await caught_up(rig.bus, "alerts-logs", "LOGS")
    await rig.stop_all()

    # a second restart neither counts the lines again nor fires again
    third = await rig.start(config(rule))
    [series] = third.logs.rules["ApiErrors"].series.values()
    assert series.window.count(now.timestamp() + 1) == 6
    assert len(await rig.events()) == 1


async def test_a_silence_keeps_a_log_alert_from_paging(rig: Rig) -> None:
    await rig.start(config(API_ERRORS))
    now = rig.clock.now()
    await rig.bus.request(
        CREATE_SILENCE,
        {
            "matchers": [{"name": "host", "value": "web-1", "isRegex": False, "isEqual": True}],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
            "createdBy": "ann",
            "comment": "deploy",
            "by": "key:ann",
        },
    )
    await send(rig.bus, batch(now, *errors(5), *errors(5, host="web-2")))
    fired = {e.labels["host"]: e for e in await rig.until(2)}
    assert [r.kind for r in fired["web-1"].suppressed_by] == ["silence"]
    assert fired["web-2"].suppressed_by == []


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"window": None}, "window", "a log rule counts lines over a window"),
    ({"logs": {"q": '"unclosed'}}, "logs.q", 'has no closing "'),
    ({"logs": {"q": "a AND"}}, "logs.q", "ends where a word"),
    ({"logs": {"level": ["loud"]}}, "logs.level[0]", "Input should be"),
    ({"logs": {"by": ["9x"]}}, "logs.by[0]", "should match pattern"),
    ({"logs": {"servce": "api"}}, "logs.servce", "Extra inputs are not permitted"),
    ({"metric": "cpu"}, "metric", "a log rule counts log lines; leave metric out"),
    ({"function": "avg"}, "function", "a log rule (logs) has no function"),
    ({"absent_for": "5m"}, "absent_for", "a log rule (logs) has no absent_for"),
    ({"direction": "below"}, "direction", "direction above"),
    ({"matchers": ["host=a"]}, "matchers", "logs.labels"),
    ({"warning": 0.5, "critical": None}, "warning", "1 or more"),
    ({"critical": 3}, "critical", "critical must be at or above warning"),
    ({"warning": None, "critical": None}, "warning", "needs a warning or a critical count"),
]


def _rule(change: dict[str, Any]) -> dict[str, Any]:
    rule = {**API_ERRORS, **change}
    return {k: v for k, v in rule.items() if v is not None}


@pytest.mark.parametrize(("change", "field", "message"), BAD)
def test_a_bad_log_rule_in_the_file_names_its_field(
    change: dict[str, Any], field: str, message: str
) -> None:
    text = yaml.safe_dump({"rules": [{"name": "Ok", "metric": "m", "warning": 1}, _rule(change)]})
    with pytest.raises(ConfigError) as error:
        parse_config(text)
    assert f"rules[1].{field}: " in str(error.value), str(error.value)
    assert message in str(error.value)


async def test_a_bad_log_rule_through_the_command_names_its_field(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build(settings, VigilConfig(rules=[])))
    for change, field, message in BAD:
        with pytest.raises(InvalidInput) as refused:
            await bus.request(CREATE_RULE, {"rule": _rule(change), "by": "ann"})
        dotted = field.replace("[", ".").replace("]", "")
        assert refused.value.field == f"rule.{dotted}", (change, refused.value.message)
        assert message in refused.value.message
    made = await bus.request(CREATE_RULE, {"rule": API_ERRORS, "by": "ann"})
    assert made["seq"] > 0  # the good rule is taken


async def test_a_log_rule_made_through_the_api_counts_the_next_lines(rig: Rig) -> None:
    service: AlertsService = await rig.start(config())
    await rig.bus.request(CREATE_RULE, {"rule": API_ERRORS, "by": "ann"})
    assert "ApiErrors" in service.logs.rules
    await send(rig.bus, batch(rig.clock.now(), *errors(5)))
    [fired] = await rig.until(1)
    assert isinstance(fired, AlertFired) and fired.rule == "ApiErrors"


def test_a_window_counts_each_line_once_and_forgets_the_old() -> None:
    window = WindowCount(60.0)
    for at in (100.0, 100.0, 130.0, 159.0, 120.0):  # one out of order
        window.add(at)
    assert window.count(159.0) == 5
    assert window.count(161.0) == 3  # the two at 100 left the window
    assert window.count(99.0) == 5  # a line stamped ahead of the clock is not gone
    window.evict(185.0)
    assert (window.count(185.0), window.total) == (2, 2)
    window.evict(300.0)
    assert not window


def test_a_selector_splits_series_by_the_lines_own_fields() -> None:
    selector = LineSelector(LogSelector(level=["error"], by=["service", "host", "level"]))
    entry = line("boom", service="pay", host="h1")
    assert selector.matches(entry)
    assert not selector.matches(line("boom", level="info"))
    assert selector.series_labels(entry) == {"service": "pay", "host": "h1", "level": "error"}
    assert selector.series_labels(line("boom", service="")) == {"level": "error"}


def test_every_log_rule_field_reads_back_as_written() -> None:
    rule = RuleConfig.model_validate(
        {**API_ERRORS, "logs": {**API_ERRORS["logs"], "q": "a OR b", "labels": {"dc": "eu"}}}
    )
    exported = rule.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    assert "metric" not in exported or exported["metric"] == "log_lines"
    assert RuleConfig.model_validate(exported) == rule


async def test_an_alert_resolved_by_hand_while_the_count_stays_up_fires_again_as_another(
    rig: Rig,
) -> None:
    await rig.start(config(API_ERRORS))
    await send(rig.bus, batch(rig.clock.now(), *errors(5)))
    [fired] = await rig.until(1)
    await rig.bus.request(RESOLVE_ALERT, {"alert_id": fired.aggregate_id, "by": "ann"})
    # the lines are still in the window: the timer fires a new alert on them, once
    events = await rig.until(3)
    again = events[2]
    assert isinstance(events[1], AlertResolved) and events[1].reason == "manual"
    assert isinstance(again, AlertFired) and again.aggregate_id != fired.aggregate_id
    rig.clock.advance(0.5)
    await caught_up(rig.bus, "alerts-logs", "LOGS")
    assert len(await rig.events()) == 3


async def test_a_restart_keeps_a_for_hold_under_way(rig: Rig) -> None:
    rule = {**API_ERRORS, "warning": 3, "critical": None, "for": "30s"}
    await rig.start(config(rule))
    await send(rig.bus, batch(rig.clock.now(), *errors(3)))
    await caught_up(rig.bus, "alerts-logs", "LOGS")
    await rig.stop_all()

    rig.clock.advance(31)  # the hold began before the restart and is over now
    await rig.start(config(rule))
    [fired] = await rig.until(1)
    assert isinstance(fired, AlertFired) and fired.value == 3
