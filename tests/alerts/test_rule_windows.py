"""Window functions: each one over a series, evicted by time, bounded, reset-aware for
counters; and a rule judging a window's value instead of each sample."""

from __future__ import annotations

import pytest

from services.alerts import windows
from services.alerts.replay import RuleReplay
from services.alerts.windows import Counter, window_for
from shared.events import Sample
from shared.ruleconfig import RuleConfig

SERIES = [(0, 4.0), (10, 8.0), (20, 1.0), (30, 5.0), (40, 2.0)]


def fed(function: str, span: float, points: list[tuple[float, float]]) -> float | None:
    window = window_for(function, span)
    for at, value in points:
        window.add(at, value)
    return window.value()


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        # a 25 s window at t=40 holds the points of t=20, 30, 40: 1, 5, 2
        ("avg", 8 / 3),
        ("sum", 8.0),
        ("count", 3.0),
        ("min", 1.0),
        ("max", 5.0),
        ("p50", 2.0),
        ("p90", 4.4),  # between 2 and 5, linearly, as quantile_over_time
        ("delta", 1.0),  # 2 - 1
        ("last", 2.0),
    ],
)
def test_each_function_sees_only_the_points_inside_its_window(
    function: str, expected: float
) -> None:
    assert fed(function, 25, SERIES) == pytest.approx(expected)


def test_the_window_is_open_at_its_far_end() -> None:
    # given points 10 s apart, when the window is exactly 20 s
    # then the point 20 s before the newest is out: (now - 20, now]
    assert fed("count", 20, SERIES) == 2.0


def test_min_and_max_follow_the_window_as_extremes_leave_it() -> None:
    low, high = window_for("min", 15), window_for("max", 15)
    answers = []
    for at, value in [(0, 1.0), (10, 9.0), (20, 5.0), (30, 7.0), (40, 3.0)]:
        low.add(at, value)
        high.add(at, value)
        answers.append((low.value(), high.value()))
    assert answers == [(1, 1), (1, 9), (5, 9), (5, 7), (3, 7)]


def test_running_sums_recover_from_what_subtraction_loses() -> None:
    # given a huge value that swallows the small ones added while it was in the window
    window = window_for("avg", 10)
    window.add(0, 1e17)
    # when it has left the window long ago
    for at in range(1, 200):
        window.add(at, 1.0)
    # then the average is exact again: the sum is recomputed now and then
    assert window.value() == 1.0


def test_increase_and_rate_count_a_counter_reset_as_a_restart_from_zero() -> None:
    # given a counter that restarts between t=20 and t=30
    increase, rate = Counter(60, "increase"), Counter(60, "rate")
    for at, value in [(0, 100.0), (10, 110.0), (20, 130.0), (30, 5.0), (40, 25.0)]:
        increase.add(at, value)
        rate.add(at, value)
    # then the drop adds the new value (5), never a negative increase
    assert increase.value() == 10 + 20 + 5 + 20
    assert rate.value() == pytest.approx(55 / 40)


def test_rate_needs_two_points() -> None:
    rate = Counter(60, "rate")
    rate.add(0, 10)
    assert rate.value() is None
    assert fed("delta", 60, [(0, 3.0)]) is None


def test_a_point_not_newer_than_the_newest_is_ignored() -> None:
    # a batch delivered again, or a sample stamped in the past
    window = window_for("sum", 60)
    assert window.add(10, 1.0)
    assert not window.add(10, 1.0)
    assert not window.add(5, 100.0)
    assert window.value() == 1.0


def test_a_window_holds_at_most_max_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(windows, "MAX_POINTS", 5)
    window = window_for("p50", 3600)
    for at in range(10):
        window.add(at, float(at))
    assert window.value() == 7.0  # the newest five: 5..9
    assert len(window.points) == 5


async def test_a_window_rule_fires_on_the_average_not_on_a_single_spike() -> None:
    # given a rule on the 1-minute average of cpu
    rule = RuleConfig.model_validate(
        {"name": "BusyCPU", "metric": "cpu", "function": "avg", "window": "1m", "warning": 80}
    )
    replay = RuleReplay([rule])
    # when one sample spikes among quiet ones
    for at, value in [(0, 10), (10, 99), (20, 10)]:
        await replay.batch(at, [Sample(name="cpu", value=value, labels={"host": "a"})])
    # then nothing fires
    assert replay.changes() == []
    # when the load stays high until the average crosses 80
    for at in range(30, 100, 10):
        await replay.batch(at, [Sample(name="cpu", value=100, labels={"host": "a"})])
    (fired,) = replay.changes()
    assert (fired.kind, fired.at) == ("fired", 60)
    assert fired.value == pytest.approx((99 + 10 + 400) / 6)  # t=10..60


async def test_a_rate_rule_reads_counters_per_second() -> None:
    rule = RuleConfig.model_validate(
        {
            "name": "Busy",
            "metric": "requests_total",
            "function": "rate",
            "window": "5m",
            "warning": 10,
        }
    )
    replay = RuleReplay([rule])
    for step in range(5):  # 5 requests/s
        await replay.batch(step * 60, [Sample(name="requests_total", value=step * 300.0)])
    assert replay.changes() == []
    await replay.batch(300, [Sample(name="requests_total", value=1200 + 60 * 30.0)])
    (fired,) = replay.changes()
    # t=60..300 (the point at t=0 left the window): (3000 - 300) / 240 s
    assert fired.value == pytest.approx(2700 / 240)
