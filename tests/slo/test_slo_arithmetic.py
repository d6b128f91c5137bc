"""SLO arithmetic against cases worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from services.metrics.slo.arithmetic import (
    burn_alerts,
    counter_increases,
    counters_timeline,
    figures,
    observed_percentile,
    runs_timeline,
    samples_timeline,
    violations,
    window_figures,
    without,
)
from services.metrics.slo.periods import month_bounds, window_bounds, window_length_s
from shared.sloconfig import BURN_ALERTS

MIN = 60_000


def series(ts_ms: list[int], values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.array(ts_ms, dtype=np.int64), np.array(values, dtype=np.float64)


def test_a_counter_reset_counts_the_new_value() -> None:
    # 10, 15, 20, reset to 3, 8: 5 + 5 + 3 + 5 = 18 events after the baseline
    assert counter_increases(np.array([10.0, 15, 20, 3, 8])).tolist() == [0, 5, 5, 3, 5]


def test_good_over_total_from_two_counters_with_a_reset() -> None:
    total = series([0, MIN, 2 * MIN, 3 * MIN], [100, 200, 300, 50])  # +100 +100 +50
    good = series([0, MIN, 2 * MIN, 3 * MIN], [100, 199, 290, 45])  # +99 +91 +45
    timeline = counters_timeline([good], [total])
    result = window_figures(timeline, 1, 4 * MIN, 99.0)
    assert (result.good, result.total) == (235.0, 250.0)
    assert result.sli == pytest.approx(0.94)
    # 99 %: 2.5 bad events allowed, 15 happened: 1 - 15/2.5 = -5 (the budget is gone 6 times)
    assert result.budget_events == pytest.approx(2.5)
    assert result.budget_remaining == pytest.approx(-5.0)
    assert result.burn_rate == pytest.approx(6.0)  # 6 % bad against 1 % allowed


def test_bad_counter_and_several_series_add_up() -> None:
    total_a = series([0, MIN], [0, 500])
    total_b = series([0, MIN], [1000, 1500])
    bad = series([0, MIN], [7, 9])  # 2 bad
    result = window_figures(
        counters_timeline([bad], [total_a, total_b], bad=True), 1, 2 * MIN, 99.9
    )
    assert (result.good, result.total, result.bad) == (998.0, 1000.0, 2.0)
    assert result.burn_rate == pytest.approx(2.0)
    assert result.budget_remaining == pytest.approx(-1.0)


def test_a_data_gap_moves_events_to_the_next_sample_and_loses_none() -> None:
    # samples every minute, then nothing for 10 minutes: the increase across the gap is
    # counted at the sample after it
    total = series([0, MIN, 12 * MIN, 13 * MIN], [0, 10, 130, 140])
    good = series([0, MIN, 12 * MIN, 13 * MIN], [0, 10, 100, 110])
    timeline = counters_timeline([good], [total])
    assert timeline.counts(1, 14 * MIN) == (110.0, 140.0)
    assert timeline.counts(2 * MIN, 12 * MIN) == (0.0, 0.0)  # the gap itself: no events
    assert timeline.counts(12 * MIN, 13 * MIN) == (90.0, 120.0)


def test_partial_window_counts_only_what_lies_inside() -> None:
    runs = series([i * MIN for i in range(10)], [1, 1, 0, 1, 1, 1, 0, 0, 1, 1])
    timeline = runs_timeline([runs])
    whole = window_figures(timeline, 0, 10 * MIN, 90.0)
    assert (whole.good, whole.total) == (7.0, 10.0)
    part = window_figures(timeline, 5 * MIN, 8 * MIN, 90.0)  # minutes 5, 6, 7
    assert (part.good, part.total) == (1.0, 3.0)
    empty = window_figures(timeline, 20 * MIN, 30 * MIN, 90.0)
    assert empty.sli is None and empty.budget_remaining is None and empty.burn_rate == 0.0


def test_no_events_spend_no_budget() -> None:
    result = figures(0.0, 0.0, 99.9)
    assert result.burn_rate == 0.0 and result.bad == 0.0


def test_violations_merge_neighbouring_steps() -> None:
    # one run a minute; 5-minute steps; down in minutes 6-7 and 10-14 and 22
    up = [1.0] * 30
    for minute in (6, 7, 10, 11, 12, 13, 14, 22):
        up[minute] = 0.0
    timeline = runs_timeline([series([m * MIN for m in range(30)], up)])
    found = violations(timeline, 0, 30 * MIN, 5 * MIN, 99.0)
    assert [(v.start_ms // MIN, v.end_ms // MIN, v.good, v.total) for v in found] == [
        (5, 15, 3.0, 10.0),
        (20, 25, 4.0, 5.0),
    ]
    assert found[0].public()["duration_s"] == 600.0
    # at 50 % the step with 3 good of 5 passes, the one with 0 of 5 does not
    assert [
        (v.start_ms // MIN, v.end_ms // MIN)
        for v in violations(timeline, 0, 30 * MIN, 5 * MIN, 50.0)
    ] == [(10, 15)]


def test_a_gap_ends_a_violation() -> None:
    ts = [0, MIN, 2 * MIN, 5 * MIN]  # minutes 3 and 4 have no run
    timeline = runs_timeline([series(ts, [0, 0, 0, 0])])
    found = violations(timeline, 0, 6 * MIN, MIN, 99.0)
    assert [(v.start_ms // MIN, v.end_ms // MIN) for v in found] == [(0, 3), (5, 6)]


def test_the_last_step_is_cut_at_the_end() -> None:
    timeline = runs_timeline([series([0, 7 * MIN], [1, 0])])
    found = violations(timeline, 0, 8 * MIN, 5 * MIN, 99.0)
    assert [(v.start_ms // MIN, v.end_ms // MIN) for v in found] == [(5, 8)]


def test_maintenance_is_left_out() -> None:
    timeline = runs_timeline([series([m * MIN for m in range(10)], [1, 1, 0, 0, 0, 1, 1, 1, 1, 1])])
    assert window_figures(timeline, 0, 10 * MIN, 99.0).good == 7.0
    kept = without(timeline, [(2 * MIN, 5 * MIN)])
    result = window_figures(kept, 0, 10 * MIN, 99.0)
    assert (result.good, result.total, result.sli) == (7.0, 7.0, 1.0)
    assert violations(kept, 0, 10 * MIN, MIN, 99.0) == []


def test_latency_samples_under_a_threshold_and_the_observed_percentile() -> None:
    values = [100.0, 120, 90, 400, 110, 95, 105, 800, 99, 101]
    timeline = samples_timeline([series([m * MIN for m in range(10)], values)], 300.0)
    result = window_figures(timeline, 0, 10 * MIN, 80.0)
    assert (result.good, result.total) == (8.0, 10.0)
    assert result.burn_rate == pytest.approx(1.0)  # 20 % slow against 20 % allowed
    assert observed_percentile(timeline, 0, 10 * MIN, 80.0) == 120.0  # 8th of 10 sorted
    assert observed_percentile(timeline, 0, 10 * MIN, 90.0) == 400.0


def test_burn_alerts_need_both_windows_of_a_pair() -> None:
    assert burn_alerts({"1h": 15, "5m": 20}, BURN_ALERTS) == {"page": True, "ticket": False}
    assert burn_alerts({"1h": 15, "5m": 1}, BURN_ALERTS) == {"page": False, "ticket": False}
    assert burn_alerts({"6h": 6, "30m": 6}, BURN_ALERTS)["page"] is True
    rates = {"1d": 3, "2h": 3, "3d": 0.5, "6h": 0.5}
    assert burn_alerts(rates, BURN_ALERTS) == {"page": False, "ticket": True}
    assert burn_alerts({"3d": 1, "6h": 1}, BURN_ALERTS) == {"page": False, "ticket": True}


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_calendar_windows_and_month_boundaries() -> None:
    now = at("2026-03-15T12:00:00")
    assert window_bounds("month", now) == (at("2026-03-01T00:00:00"), now)
    assert window_bounds("quarter", now) == (at("2026-01-01T00:00:00"), now)
    assert window_bounds("7d", now) == (now - 7 * 86400, now)
    assert window_length_s("month", now) == 31 * 86400
    assert window_length_s("quarter", now) == 90 * 86400  # Jan 31 + Feb 28 + Mar 31
    assert month_bounds("2026-12") == (at("2026-12-01T00:00:00"), at("2027-01-01T00:00:00"))
    assert month_bounds("2024-02")[1] - month_bounds("2024-02")[0] == 29 * 86400
    for bad in ("2026-13", "2026-1", "26-01", "2026-00"):
        with pytest.raises(ValueError, match="not a month"):
            month_bounds(bad)


def test_a_month_boundary_splits_events_exactly() -> None:
    # runs at 23:59 on Jan 31 and 00:00 on Feb 1: the second belongs to February
    jan_start, feb_start = month_bounds("2026-01")
    _, feb_end = month_bounds("2026-02")
    ms = [int((feb_start - 60) * 1000), int(feb_start * 1000), int((feb_start + 60) * 1000)]
    timeline = runs_timeline([series(ms, [0, 1, 1])])
    january = window_figures(timeline, int(jan_start * 1000), int(feb_start * 1000), 99.0)
    february = window_figures(timeline, int(feb_start * 1000), int(feb_end * 1000), 99.0)
    assert (january.good, january.total) == (0.0, 1.0)
    assert (february.good, february.total) == (2.0, 2.0)
