"""Who is on call: every expected answer below is computed by hand from the calendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.oncall import OnCall, Shift, on_call, shifts
from shared.pagingconfig import ScheduleConfig


def z(text: str) -> datetime:
    """A UTC instant from 'YYYY-MM-DDTHH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def schedule(layers: list[dict[str, Any]], tz: str = "UTC", **more: Any) -> ScheduleConfig:
    return ScheduleConfig.model_validate({"name": "ops", "time_zone": tz, "layers": layers, **more})


def layer(name: str, users: list[str], rotation: str = "daily", **more: Any) -> dict[str, Any]:
    return {"name": name, "users": users, "rotation": rotation, **more}


DAILY = schedule([layer("day", ["ann", "bob", "cat"], start="2026-01-05", handoff="09:00")])


def test_nobody_before_the_first_handoff() -> None:
    assert on_call(DAILY, z("2026-01-05T08:59:59")) is None
    assert on_call(DAILY, z("2025-12-31T12:00")) is None


def test_daily_rotation_and_its_boundaries() -> None:
    assert on_call(DAILY, z("2026-01-05T09:00")) == OnCall(
        "ann", "day", False, z("2026-01-05T09:00"), z("2026-01-06T09:00")
    )
    just_before = z("2026-01-06T09:00") - timedelta(microseconds=1)
    assert on_call(DAILY, just_before).user == "ann"  # type: ignore[union-attr]
    assert on_call(DAILY, z("2026-01-06T09:00")).user == "bob"  # type: ignore[union-attr]
    assert on_call(DAILY, z("2026-01-07T23:00")).user == "cat"  # type: ignore[union-attr]
    # the fourth day comes back to the first user, and so does day 31 (30 = 3 x 10)
    assert on_call(DAILY, z("2026-01-08T09:00")).user == "ann"  # type: ignore[union-attr]
    found = on_call(DAILY, z("2026-02-04T10:00"))
    assert found == OnCall("ann", "day", False, z("2026-02-04T09:00"), z("2026-02-05T09:00"))


def test_weekly_rotation_hands_over_on_the_start_weekday_in_the_zone() -> None:
    weekly = schedule(
        [layer("week", ["ann", "bob"], "weekly", start="2026-01-05", handoff="09:00")],
        tz="Europe/Berlin",  # winter: UTC+1, so 09:00 local is 08:00Z
    )
    assert on_call(weekly, z("2026-01-05T07:59")) is None
    assert on_call(weekly, z("2026-01-08T12:00")) == OnCall(
        "ann", "week", False, z("2026-01-05T08:00"), z("2026-01-12T08:00")
    )
    assert on_call(weekly, z("2026-01-12T07:59")).user == "ann"  # type: ignore[union-attr]
    assert on_call(weekly, z("2026-01-12T08:00")).user == "bob"  # type: ignore[union-attr]
    assert on_call(weekly, z("2026-01-19T08:00")).user == "ann"  # type: ignore[union-attr]


def test_daily_handoff_stays_at_local_time_across_spring_dst() -> None:
    # Berlin moves from UTC+1 to UTC+2 on Sunday 2026-03-29 at 02:00 local
    berlin = schedule(
        [layer("day", ["ann", "bob"], start="2026-03-27", handoff="09:00")], tz="Europe/Berlin"
    )
    assert on_call(berlin, z("2026-03-28T12:00")) == OnCall(
        "bob", "day", False, z("2026-03-28T08:00"), z("2026-03-29T07:00")
    )  # a 23-hour shift
    assert on_call(berlin, z("2026-03-29T07:00")) == OnCall(
        "ann", "day", False, z("2026-03-29T07:00"), z("2026-03-30T07:00")
    )
    assert on_call(berlin, z("2026-03-29T06:59:59")).user == "bob"  # type: ignore[union-attr]


def test_daily_handoff_stays_at_local_time_across_autumn_dst() -> None:
    # back from UTC+2 to UTC+1 on Sunday 2026-10-25 at 03:00 local
    berlin = schedule(
        [layer("day", ["ann", "bob"], start="2026-10-23", handoff="09:00")], tz="Europe/Berlin"
    )
    assert on_call(berlin, z("2026-10-24T12:00")) == OnCall(
        "bob", "day", False, z("2026-10-24T07:00"), z("2026-10-25T08:00")
    )  # a 25-hour shift
    assert on_call(berlin, z("2026-10-25T07:30")).user == "bob"  # type: ignore[union-attr]
    assert on_call(berlin, z("2026-10-25T08:00")).user == "ann"  # type: ignore[union-attr]


def test_custom_shifts_are_exact_durations_across_dst() -> None:
    berlin = schedule(
        [
            layer(
                "twelve", ["ann", "bob"], "custom", shift="12h", start="2026-03-28", handoff="21:00"
            )
        ],
        tz="Europe/Berlin",
    )
    # first handoff 21:00 CET = 20:00Z; then every 12 hours of real time
    assert on_call(berlin, z("2026-03-28T20:00")) == OnCall(
        "ann", "twelve", False, z("2026-03-28T20:00"), z("2026-03-29T08:00")
    )
    # 08:00Z is 10:00 local after the change: exact hours, not wall-clock
    assert on_call(berlin, z("2026-03-29T08:00")) == OnCall(
        "bob", "twelve", False, z("2026-03-29T08:00"), z("2026-03-29T20:00")
    )
    assert on_call(berlin, z("2026-03-30T08:00")).user == "bob"  # type: ignore[union-attr]
    assert on_call(berlin, z("2026-03-28T19:59")) is None


def test_a_higher_layer_wins_where_it_has_someone() -> None:
    layered = schedule(
        [
            layer("base", ["ann", "bob"], "weekly", start="2026-01-05", handoff="12:00"),
            layer("top", ["nat"], start="2026-01-10", handoff="09:00"),
        ]
    )
    # before the top layer starts, the base one answers, until the top one takes over
    assert on_call(layered, z("2026-01-10T08:00")) == OnCall(
        "ann", "base", False, z("2026-01-05T12:00"), z("2026-01-10T09:00")
    )
    assert on_call(layered, z("2026-01-10T09:00")) == OnCall(
        "nat", "top", False, z("2026-01-10T09:00"), z("2026-01-11T09:00")
    )
    # the base layer's handoff at 2026-01-12 12:00 is hidden: it cuts no shift
    assert shifts(layered, z("2026-01-11T00:00"), z("2026-01-13T00:00")) == [
        Shift("nat", "top", False, z("2026-01-11T00:00"), z("2026-01-11T09:00")),
        Shift("nat", "top", False, z("2026-01-11T09:00"), z("2026-01-12T09:00")),
        Shift("nat", "top", False, z("2026-01-12T09:00"), z("2026-01-13T00:00")),
    ]


OVERRIDDEN = schedule(
    [layer("day", ["ann", "bob"], start="2026-01-05", handoff="09:00")],
    tz="Europe/Berlin",
    overrides=[{"user": "cat", "start": "2026-01-06T02:00", "end": "2026-01-06T06:00"}],
)


def test_an_override_covers_0200_to_0600_local() -> None:
    # ann holds 2026-01-05 08:00Z .. 2026-01-06 08:00Z; the override is 01:00Z .. 05:00Z
    assert on_call(OVERRIDDEN, z("2026-01-06T00:59:59")) == OnCall(
        "ann", "day", False, z("2026-01-05T08:00"), z("2026-01-06T01:00")
    )
    assert on_call(OVERRIDDEN, z("2026-01-06T01:00")) == OnCall(
        "cat", "override", True, z("2026-01-06T01:00"), z("2026-01-06T05:00")
    )
    assert on_call(OVERRIDDEN, z("2026-01-06T04:59:59")).user == "cat"  # type: ignore[union-attr]
    assert on_call(OVERRIDDEN, z("2026-01-06T05:00")) == OnCall(
        "ann", "day", False, z("2026-01-06T05:00"), z("2026-01-06T08:00")
    )


def test_shifts_over_a_range_with_an_override() -> None:
    assert shifts(OVERRIDDEN, z("2026-01-05T00:00"), z("2026-01-06T09:00")) == [
        Shift("ann", "day", False, z("2026-01-05T08:00"), z("2026-01-06T01:00")),
        Shift("cat", "override", True, z("2026-01-06T01:00"), z("2026-01-06T05:00")),
        Shift("ann", "day", False, z("2026-01-06T05:00"), z("2026-01-06T08:00")),
        Shift("bob", "day", False, z("2026-01-06T08:00"), z("2026-01-06T09:00")),
    ]


def test_overrides_with_offsets_and_the_later_one_wins() -> None:
    both = schedule(
        [layer("day", ["ann"], start="2026-01-05", handoff="09:00")],
        overrides=[
            {"user": "cat", "start": "2026-01-06T10:00+00:00", "end": "2026-01-06T14:00+00:00"},
            {"user": "dan", "start": "2026-01-06T12:00+02:00", "end": "2026-01-06T13:00+00:00"},
        ],
    )
    # dan's 12:00+02:00 is 10:00Z: he covers 10:00Z-13:00Z, cat only the last hour
    assert on_call(both, z("2026-01-06T10:30")).user == "dan"  # type: ignore[union-attr]
    assert on_call(both, z("2026-01-06T13:00")) == OnCall(
        "cat", "override", True, z("2026-01-06T13:00"), z("2026-01-06T14:00")
    )
    # an override is on call even where no layer has begun
    early = schedule(
        [layer("day", ["ann"], start="2026-02-01", handoff="09:00")],
        overrides=[{"user": "cat", "start": "2026-01-06T10:00", "end": "2026-01-06T11:00"}],
    )
    assert on_call(early, z("2026-01-06T10:00")) == OnCall(
        "cat", "override", True, z("2026-01-06T10:00"), z("2026-01-06T11:00")
    )
    assert on_call(early, z("2026-01-06T11:00")) is None


def test_a_single_user_layer_still_has_shifts() -> None:
    alone = schedule([layer("day", ["ann"], start="2026-01-05", handoff="09:00")])
    assert on_call(alone, z("2026-01-09T10:00")) == OnCall(
        "ann", "day", False, z("2026-01-09T09:00"), z("2026-01-10T09:00")
    )


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        on_call(DAILY, datetime(2026, 1, 5, 12))
    with pytest.raises(ValueError, match="after start"):
        shifts(DAILY, z("2026-01-06T00:00"), z("2026-01-05T00:00"))
    with pytest.raises(ValueError, match="ask for less"):
        shifts(
            schedule([layer("hour", ["ann"], "custom", shift="1m", start="2026-01-01")]),
            z("2026-01-01T00:00"),
            z("2026-03-01T00:00"),
        )
