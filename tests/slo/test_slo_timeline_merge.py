"""Counters sampled at the same times make one event list: its sums over any window and
its violations must be those of the two lists merged."""

from __future__ import annotations

import numpy as np

from services.metrics.slo.arithmetic import (
    Timeline,
    counters_timeline,
    merged_increases,
    violations,
)


def test_one_event_list_sums_as_the_two_merged() -> None:
    rng = np.random.default_rng(7)
    ts = np.cumsum(rng.integers(1, 20_000, 5_000)).astype(np.int64)
    total = np.cumsum(rng.integers(0, 100, 5_000)).astype(np.float64)
    total[2_000:] -= total[2_000]  # a reset
    bad = np.cumsum(rng.integers(0, 3, 5_000)).astype(np.float64)
    for is_bad, good in ((True, bad), (False, total - bad)):
        one = counters_timeline([(ts, good)], [(ts, total)], bad=is_bad)
        assert len(one.ts) == len(ts)
        _, g_inc = merged_increases([(ts, good)])
        _, t_inc = merged_increases([(ts, total)])
        both_ts = np.concatenate([ts, ts])
        good_events = np.concatenate([t_inc, -g_inc]) if is_bad else np.r_[np.zeros(len(ts)), g_inc]
        merged = Timeline.of(both_ts, good_events, np.r_[t_inc, np.zeros(len(ts))])
        assert len(merged.ts) == 2 * len(ts)
        edges = np.sort(rng.integers(int(ts[0]) - 5, int(ts[-1]) + 5, (200, 2)), axis=1)
        edges[:20, 1] = edges[:20, 0] + 1  # one-millisecond windows too
        for start, end in edges.tolist():
            assert one.counts(start, end) == merged.counts(start, end)
        span = (int(ts[0]), int(ts[-1]) + 1)
        assert violations(one, *span, 60_000, 99.0) == violations(merged, *span, 60_000, 99.0)
        assert violations(one, *span, 60_000, 99.0)  # some steps fall short
