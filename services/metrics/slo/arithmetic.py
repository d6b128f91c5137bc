"""SLO arithmetic as pure functions over arrays: no store, no clock.

Every SLI becomes a timeline of events: at each timestamp (Unix ms) some good and some
total events. A counter's events are its increases between consecutive samples, stamped
at the later one (a decrease is a reset: the new value is what was counted since), so a
gap in the data moves events to the first sample after it and loses none. A check run or
a latency sample is one event. Sums over any interval ``[start, end)`` then come from
cumulative sums in two binary searches, which is what makes burn rates over many windows
and violations over thousands of steps cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Series = tuple[Ints, Floats]  # one series' (ms timestamps, values), oldest first


@dataclass(frozen=True)
class Timeline:
    """Events in time order; ``good_sum[i]``/``total_sum[i]``: events before index i."""

    ts: Ints
    good_sum: Floats
    total_sum: Floats
    values: Floats | None = None  # latency samples, for the observed percentile

    @classmethod
    def of(cls, ts: Ints, good: Floats, total: Floats, values: Floats | None = None) -> Timeline:
        if len(ts) > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
            order = np.argsort(ts, kind="stable")
            ts, good, total = ts[order], good[order], total[order]
            values = None if values is None else values[order]
        return cls(ts, running_sum(good), running_sum(total), values)

    def index(self, at_ms: int | Ints) -> npt.NDArray[np.intp]:
        return np.searchsorted(self.ts, at_ms, side="left")

    def counts(self, start_ms: int, end_ms: int) -> tuple[float, float]:
        """(good, total) events in ``[start_ms, end_ms)``."""
        low, high = int(self.index(start_ms)), int(self.index(end_ms))
        good = float(self.good_sum[high] - self.good_sum[low])
        total = float(self.total_sum[high] - self.total_sum[low])
        return max(0.0, min(good, total)), total


def running_sum(events: Floats) -> Floats:
    """0, then the sum of events before each index."""
    sums = np.empty(len(events) + 1)
    sums[0] = 0.0
    np.cumsum(events, out=sums[1:])
    return sums


EMPTY = Timeline(np.zeros(0, np.int64), np.zeros(1), np.zeros(1))


def counter_increases(values: Floats) -> Floats:
    """Each sample's increase over the one before; after a reset, its whole value. The
    first sample is the baseline: nothing is known of what came before it."""
    if len(values) == 0:
        return np.zeros(0)
    step = np.diff(values, prepend=values[0])
    return np.where(step >= 0, step, values)


def merged_increases(series: Sequence[Series]) -> tuple[Ints, Floats]:
    """The increases of several counters (say, one per instance) on one time line."""
    if not series:
        return np.zeros(0, np.int64), np.zeros(0)
    ts = np.concatenate([s[0] for s in series])
    increases = np.concatenate([counter_increases(s[1]) for s in series])
    return ts, increases


def counters_timeline(
    good: Sequence[Series], total: Sequence[Series], bad: bool = False
) -> Timeline:
    """Good (or, with ``bad``, bad) events against all events, from counters."""
    g_ts, g_inc = merged_increases(good)
    t_ts, t_inc = merged_increases(total)
    if np.array_equal(g_ts, t_ts):
        # both counters sampled at the same times (one scrape): one event list, and no
        # merging; sums between timestamps are the same as with the two lists merged
        return Timeline.of(t_ts, t_inc - g_inc if bad else g_inc, t_inc)
    ts = np.concatenate([t_ts, g_ts])
    total_events = np.concatenate([t_inc, np.zeros(len(g_ts))])
    if bad:  # good = total - bad
        good_events = np.concatenate([t_inc, -g_inc])
    else:
        good_events = np.concatenate([np.zeros(len(t_ts)), g_inc])
    return Timeline.of(ts, good_events, total_events)


def runs_timeline(series: Sequence[Series]) -> Timeline:
    """A check's runs: each sample one event, good when up (1)."""
    if not series:
        return EMPTY
    ts = np.concatenate([s[0] for s in series])
    up = np.concatenate([s[1] for s in series])
    return Timeline.of(ts, (up >= 1).astype(np.float64), np.ones(len(ts)))


def counted_runs_timeline(ups: Sequence[Series], counts: Sequence[Series]) -> Timeline:
    """A check's runs from rollup buckets: the sum of ``up`` is the runs that were up
    (it is 0 or 1), the count all runs: exact, like the samples themselves."""
    if not counts:
        return EMPTY
    ts = np.concatenate([s[0] for s in counts])
    total = np.concatenate([s[1] for s in counts])
    good = np.concatenate([s[1] for s in ups]) if ups else np.zeros(len(ts))
    if len(good) != len(total):  # buckets of the same series: paired by time
        good = np.zeros(len(ts))
    return Timeline.of(ts, np.minimum(good, total), total)


def samples_timeline(series: Sequence[Series], threshold: float) -> Timeline:
    """Latency samples: each one event, good at or under ``threshold``."""
    if not series:
        return EMPTY
    ts = np.concatenate([s[0] for s in series])
    values = np.concatenate([s[1] for s in series])
    good = (values <= threshold).astype(np.float64)
    return Timeline.of(ts, good, np.ones(len(ts)), values)


def without(timeline: Timeline, intervals: Sequence[tuple[int, int]]) -> Timeline:
    """The timeline with the events inside any ``[start, end)`` left out (maintenance)."""
    if not intervals or len(timeline.ts) == 0:
        return timeline
    keep = np.ones(len(timeline.ts), dtype=bool)
    for start, end in intervals:
        keep[int(timeline.index(start)) : int(timeline.index(end))] = False
    good = np.diff(timeline.good_sum)[keep]
    total = np.diff(timeline.total_sum)[keep]
    values = None if timeline.values is None else timeline.values[keep]
    return Timeline.of(timeline.ts[keep], good, total, values)


@dataclass(frozen=True)
class Figures:
    """An SLO over one window. ``sli`` and ``budget_remaining`` are shares (0.999, 0.42),
    None without events; the burn rate is 1 when bad events come exactly as fast as the
    objective allows."""

    good: float
    total: float
    sli: float | None
    objective: float  # percent
    budget_events: float  # bad events the objective allows among these
    bad: float
    budget_remaining: float | None
    burn_rate: float

    def public(self) -> dict[str, float | None]:
        return {
            "good": self.good,
            "total": self.total,
            "bad": self.bad,
            "sli": self.sli,
            "objective": self.objective,
            "budget_events": self.budget_events,
            "budget_remaining": self.budget_remaining,
            "burn_rate": self.burn_rate,
        }


def figures(good: float, total: float, objective: float) -> Figures:
    budget = 1.0 - objective / 100.0
    bad = max(0.0, total - good)
    allowed = total * budget
    return Figures(
        good=good,
        total=total,
        sli=good / total if total > 0 else None,
        objective=objective,
        budget_events=allowed,
        bad=bad,
        budget_remaining=1.0 - bad / allowed if allowed > 0 else None,
        burn_rate=(bad / total) / budget if total > 0 else 0.0,
    )


def window_figures(timeline: Timeline, start_ms: int, end_ms: int, objective: float) -> Figures:
    good, total = timeline.counts(start_ms, end_ms)
    return figures(good, total, objective)


def burn_rate(timeline: Timeline, end_ms: int, window_ms: int, objective: float) -> float:
    """How fast the budget burns over the ``window_ms`` before ``end_ms``."""
    return window_figures(timeline, end_ms - window_ms, end_ms, objective).burn_rate


def burn_alerts(
    rates: dict[str, float], pairs: Sequence[tuple[str, str, str, float]]
) -> dict[str, bool]:
    """Per urgency, whether any of its (long, short) window pairs both burn at least at
    its rate: the long window says enough budget went, the short one that it still goes
    (so the alert ends soon after the burn does)."""
    firing: dict[str, bool] = {}
    for urgency, long, short, rate in pairs:
        hit = rates.get(long, 0.0) >= rate and rates.get(short, 0.0) >= rate
        firing[urgency] = firing.get(urgency, False) or hit
    return firing


@dataclass(frozen=True)
class Violation:
    """A stretch of consecutive steps whose SLI was below the objective."""

    start_ms: int
    end_ms: int
    good: float
    total: float

    def public(self) -> dict[str, float | None]:
        return {
            "start": self.start_ms / 1000,
            "end": self.end_ms / 1000,
            "duration_s": (self.end_ms - self.start_ms) / 1000,
            "good": self.good,
            "total": self.total,
            "sli": self.good / self.total if self.total > 0 else None,
        }


def violations(
    timeline: Timeline, start_ms: int, end_ms: int, step_ms: int, objective: float
) -> list[Violation]:
    """Steps of ``step_ms`` from ``start_ms`` (the last one cut at ``end_ms``) whose
    events fall short of the objective, neighbours merged. A step without events (a gap,
    maintenance) breaks no objective and ends a violation."""
    if end_ms <= start_ms or step_ms <= 0:
        return []
    edges = np.arange(start_ms, end_ms, step_ms, dtype=np.int64)
    edges = np.append(edges, np.int64(end_ms))
    at = timeline.index(edges)
    good = np.diff(timeline.good_sum[at])
    total = np.diff(timeline.total_sum[at])
    short = (total > 0) & (good < total * (objective / 100.0) - 1e-9 * np.maximum(total, 1))
    found: list[Violation] = []
    index = 0
    steps = len(short)
    while index < steps:
        if not short[index]:
            index += 1
            continue
        first = index
        while index < steps and short[index]:
            index += 1
        found.append(
            Violation(
                int(edges[first]),
                int(edges[index]),
                float(good[first:index].sum()),
                float(total[first:index].sum()),
            )
        )
    return found


def observed_percentile(
    timeline: Timeline, start_ms: int, end_ms: int, percent: float
) -> float | None:
    """The latency at ``percent`` among the samples in the window (nearest rank)."""
    if timeline.values is None:
        return None
    low, high = int(timeline.index(start_ms)), int(timeline.index(end_ms))
    if high <= low:
        return None
    window = np.sort(timeline.values[low:high])
    rank = max(1, int(np.ceil(percent / 100.0 * len(window))))
    return float(window[rank - 1])
