"""Maintenance windows: occurrences of one-off and recurring windows (local time across
daylight-saving changes), what the calendar says covers an alert, and the windows as
configuration owned by the alerts service (file and commands) on a real nats-server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.alerts.app import AlertsService, attach
from services.alerts.maintenance import MaintenanceCalendar
from shared.bus import EventBus
from shared.commands import CREATE_MAINTENANCE, DELETE_MAINTENANCE, UPDATE_MAINTENANCE
from shared.config import ConfigError, VigilConfig, parse_config
from shared.errors import Conflict, InvalidInput
from shared.events import MaintenanceWindowCreated, MaintenanceWindowsProvisioned
from shared.maintenanceconfig import MaintenanceWindowConfig, Occurrence, WindowSchedule
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.conftest import RuntimeFactory

SUNDAYS = {
    "name": "sunday-patching",
    "matchers": ["host=~web-.*"],
    "comment": "OS patches",
    "cron": "0 2 * * 0",
    "duration": "2h",
    "timezone": "Europe/Berlin",
}
ONE_OFF = {
    "name": "db-move",
    "matchers": ['team="db"', "severity!=critical"],
    "start": "2026-05-01T22:00:00+02:00",
    "end": "2026-05-02T01:30:00+02:00",
}


def window(**raw: Any) -> MaintenanceWindowConfig:
    return MaintenanceWindowConfig.model_validate(raw)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_a_weekly_window_starts_at_local_two_o_clock_across_both_dst_changes() -> None:
    schedule = WindowSchedule(window(**SUNDAYS))
    spring, _ = schedule.occurrences(utc(2026, 3, 20), utc(2026, 4, 10))
    # winter 02:00 CET = 01:00 UTC; on 29 March the clocks skip 02:00, so it starts when
    # they show 03:00 (01:00 UTC); then 02:00 CEST = 00:00 UTC
    assert spring == [
        Occurrence(utc(2026, 3, 22, 1), utc(2026, 3, 22, 3)),
        Occurrence(utc(2026, 3, 29, 1), utc(2026, 3, 29, 3)),
        Occurrence(utc(2026, 4, 5, 0), utc(2026, 4, 5, 2)),
    ]
    autumn, _ = schedule.occurrences(utc(2026, 10, 20), utc(2026, 11, 5))
    # on 25 October 02:00 comes twice: the window starts at the first (CEST)
    assert autumn == [
        Occurrence(utc(2026, 10, 25, 0), utc(2026, 10, 25, 2)),
        Occurrence(utc(2026, 11, 1, 1), utc(2026, 11, 1, 3)),
    ]
    local = [o.start.astimezone(schedule.zone).strftime("%a %H:%M") for o in spring + autumn]
    assert local == ["Sun 02:00", "Sun 03:00", "Sun 02:00", "Sun 02:00", "Sun 02:00"]


def test_a_start_in_the_skipped_hour_is_found_from_after_the_jump() -> None:
    nightly = window(**{**SUNDAYS, "cron": "30 2 * * *", "duration": "20m"})
    schedule = WindowSchedule(nightly)
    # 29 March: the clocks jump from 02:00 to 03:00; 02:30 comes as 03:30 CEST (01:30 UTC),
    # later on the wall clock than the 03:00 the range starts at
    jump = utc(2026, 3, 29, 1)
    assert schedule.occurrences(jump, utc(2026, 3, 29, 3)) == (
        [Occurrence(utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 1, 50))],
        False,
    )
    assert schedule.next_change(jump) == utc(2026, 3, 29, 1, 30)


def test_an_occurrence_under_way_at_the_start_of_the_range_is_included() -> None:
    schedule = WindowSchedule(window(**SUNDAYS))
    found, cut = schedule.occurrences(utc(2026, 4, 5, 1), utc(2026, 4, 5, 12))
    assert found == [Occurrence(utc(2026, 4, 5, 0), utc(2026, 4, 5, 2))] and not cut
    assert schedule.occurrences(utc(2026, 4, 5, 2), utc(2026, 4, 5, 12)) == ([], False)


def test_a_one_off_window_is_one_occurrence() -> None:
    schedule = WindowSchedule(window(**ONE_OFF))
    expected = Occurrence(utc(2026, 5, 1, 20), utc(2026, 5, 1, 23, 30))
    assert schedule.occurrences(utc(2026, 5, 1), utc(2026, 5, 8)) == ([expected], False)
    assert schedule.occurrences(utc(2026, 5, 2), utc(2026, 5, 8)) == ([], False)
    assert schedule.covering(utc(2026, 5, 1, 21)) == expected
    assert schedule.covering(utc(2026, 5, 1, 23, 30)) is None
    assert schedule.next_change(utc(2026, 5, 1)) == utc(2026, 5, 1, 20)
    assert schedule.next_change(utc(2026, 5, 1, 21)) == utc(2026, 5, 1, 23, 30)
    assert schedule.next_change(utc(2026, 5, 2)) is None


def test_overlapping_occurrences_are_in_force_throughout() -> None:
    hourly = window(
        name="h", matchers=["job=batch"], cron="0 * * * *", duration="90m", timezone="UTC"
    )
    schedule = WindowSchedule(hourly)
    current = schedule.covering(utc(2026, 1, 1, 5, 10))
    assert current is not None and current.start == utc(2026, 1, 1, 5)
    assert current.end > utc(2026, 1, 1, 6, 30)  # every occurrence overlaps the next
    many, cut = schedule.occurrences(utc(2026, 1, 1), utc(2026, 3, 1))
    assert len(many) == 1000 and cut


def test_a_cron_every_minute_still_answers_quickly() -> None:
    busy = window(name="b", matchers=["job=x"], cron="* * * * *", duration="30s", timezone="UTC")
    schedule = WindowSchedule(busy)
    assert schedule.covering(utc(2026, 1, 1, 0, 0, 20)) == Occurrence(
        utc(2026, 1, 1), utc(2026, 1, 1, 0, 0, 30)
    )
    assert schedule.next_change(utc(2026, 1, 1, 0, 0, 40)) == utc(2026, 1, 1, 0, 1)


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"cron": "0 2 * *"}, "cron", "five fields"),
        ({"cron": "0 25 * * *"}, "cron", "five fields"),
        ({"cron": "0 0 30 2 *"}, "cron", "never comes"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"timezone": None}, "timezone", "needs a time zone"),
        ({"duration": None}, "duration", "needs a duration"),
        ({"duration": "0s"}, "duration", "greater than 0"),
        ({"duration": "30d"}, "duration", "less than or equal"),
        ({"matchers": []}, "matchers", "at least 1"),
        ({"matchers": ["host~web"]}, "matchers.0", "is not a matcher"),
        ({"matchers": ["host=~(web"]}, "matchers.0", "invalid regular expression"),
        ({"matchers": ["host=~.*"]}, "matchers", "every alert"),
        (
            {"start": "2026-05-01T22:00:00+02:00", "end": "2026-05-01T23:00:00+02:00"},
            "cron",
            "not both",
        ),
    ],
)
def test_a_bad_recurring_window_is_refused_naming_the_field(
    changes: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        window(**{**SUNDAYS, **changes})
    [error] = refused.value.errors()
    assert ".".join(map(str, error["loc"])) == field
    assert says in error["msg"]


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"end": None}, "end", "needs an end"),
        ({"start": None}, "end", "needs a start"),
        ({"end": "2026-05-01T21:00:00+02:00"}, "end", "after start"),
        ({"start": "2026-05-01T22:00:00"}, "start", "UTC offset"),
        ({"start": "tonight"}, "start", "is not a time"),
        ({"duration": "1h"}, "duration", "only a recurring window"),
        ({"timezone": "UTC"}, "timezone", "only a recurring window"),
    ],
)
def test_a_bad_one_off_window_is_refused_naming_the_field(
    changes: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        window(**{**ONE_OFF, **changes})
    [error] = refused.value.errors()
    assert ".".join(map(str, error["loc"])) == field
    assert says in error["msg"]


def test_a_window_with_neither_form_says_what_to_give() -> None:
    with pytest.raises(ValidationError, match="give start and end for a one-off window"):
        window(name="x", matchers=["host=a"])


def test_the_file_names_the_window_line_and_field() -> None:
    text = "maintenance:\n  - name: w\n    matchers: [host=a]\n    cron: '0 2 * *'\n"
    with pytest.raises(ConfigError) as refused:
        parse_config(text)
    assert "vigil.yaml:4: maintenance[0].cron: '0 2 * *' is not a cron expression" in str(
        refused.value
    )


async def calendar_of(bus: EventBus, *windows: dict[str, Any]) -> MaintenanceCalendar:
    calendar = MaintenanceCalendar(lambda: bus, [window(**w) for w in windows], "vigil.yaml")
    await calendar.owner.start()
    return calendar


async def test_the_calendar_says_which_windows_cover_an_alert_and_until_when(
    bus: EventBus,
) -> None:
    calendar = await calendar_of(bus, SUNDAYS, ONE_OFF)
    web = {"host": "web-1", "alertname": "HighCPU"}
    assert calendar.active(web, utc(2026, 3, 29, 0, 59)) == []
    assert calendar.next_change(utc(2026, 3, 29, 0, 59)) == utc(2026, 3, 29, 1)
    [ref] = calendar.active(web, utc(2026, 3, 29, 1))
    assert (ref.kind, ref.id, ref.detail, ref.until) == (
        "maintenance",
        "sunday-patching",
        "OS patches",
        utc(2026, 3, 29, 3),
    )
    assert calendar.active({"host": "db-1"}, utc(2026, 3, 29, 1)) == []
    assert calendar.next_change(utc(2026, 3, 29, 1)) == utc(2026, 3, 29, 3)
    assert calendar.active(web, utc(2026, 3, 29, 3)) == []

    db = {"team": "db", "severity": "warning"}
    at = utc(2026, 5, 1, 21)
    assert [r.id for r in calendar.active(db, at)] == ["db-move"]
    assert calendar.active({**db, "severity": "critical"}, at) == []
    # asked for an earlier time again (a clock moved back): worked out afresh
    assert calendar.active(db, utc(2026, 5, 1, 19)) == []
    assert calendar.next_change(utc(2026, 5, 1, 19)) == utc(2026, 5, 1, 20)
    assert set(calendar.occurrences(utc(2026, 5, 1), utc(2026, 5, 4))) == {
        "db-move",
        "sunday-patching",
    }


@pytest.fixture
async def alerts(settings: Settings, start_service: RuntimeFactory) -> AlertsService:
    runtime = ServiceRuntime("alerts", settings)
    config = VigilConfig.model_validate({"rules": [], "maintenance": [SUNDAYS]})
    service = attach(runtime, config, "vigil.yaml")
    await start_service(runtime)
    return service


async def test_windows_are_configuration_the_alerts_service_owns(
    alerts: AlertsService, bus: EventBus, tmp_path: Path
) -> None:
    calendar = alerts.maintenance
    assert [w.name for w in calendar.windows] == ["sunday-patching"]
    changes: list[int] = []

    async def changed() -> None:
        changes.append(len(calendar.windows))

    calendar.on_change = changed
    made = await bus.request(CREATE_MAINTENANCE, {"window": ONE_OFF, "by": "key:ann"})
    assert made["stream"] == "CONFIG" and changes == [2]
    assert [r.id for r in calendar.active({"team": "db"}, utc(2026, 5, 1, 21))] == ["db-move"]

    later = {**ONE_OFF, "end": "2026-05-02T03:00:00+02:00"}
    await bus.request(UPDATE_MAINTENANCE, {"name": "db-move", "window": later, "by": "key:ann"})
    assert calendar.active({"team": "db"}, utc(2026, 5, 2, 0))
    with pytest.raises(Conflict) as file_managed:
        await bus.request(UPDATE_MAINTENANCE, {"name": "sunday-patching", "window": SUNDAYS})
    assert file_managed.value.field == "name"
    with pytest.raises(InvalidInput) as refused:
        await bus.request(CREATE_MAINTENANCE, {"window": {**ONE_OFF, "name": "x", "cron": "bad"}})
    assert refused.value.field == "window.cron"
    await bus.request(DELETE_MAINTENANCE, {"name": "db-move", "by": "key:ann"})
    assert calendar.active({"team": "db"}, utc(2026, 5, 1, 21)) == []
    assert changes == [2, 2, 1]

    kinds = [type(r.event) async for r in bus.replay("CONFIG", "config.>")]
    assert MaintenanceWindowsProvisioned in kinds and MaintenanceWindowCreated in kinds

    # a second owner started on the same log folds the same set
    again = MaintenanceCalendar(lambda: bus, [window(**SUNDAYS)], "vigil.yaml")
    await again.owner.start()
    assert again.windows == calendar.windows


def test_occurrences_cover_the_next_week_from_any_time() -> None:
    schedule = WindowSchedule(window(**SUNDAYS))
    start = utc(2026, 6, 3, 12)
    found, _ = schedule.occurrences(start, start + timedelta(days=7))
    assert [o.start for o in found] == [utc(2026, 6, 7, 0)]
