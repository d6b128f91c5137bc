"""Window functions over one series, kept up to date sample by sample in bounded memory.

Every window holds the series' points of the last ``window`` seconds (at most
``MAX_POINTS``; beyond that the oldest go first), evicted by time as new points come.
Each function costs O(1) amortised per sample except the percentiles (a sorted list,
O(log n) search plus a memmove):

- ``avg``/``sum``/``count``: a running sum, recomputed exactly now and then so
  subtraction does not drift;
- ``min``/``max``: a monotonic deque, whose head is the answer;
- ``p50``..``p99``: the points kept sorted, linearly interpolated as Prometheus'
  ``quantile_over_time``;
- ``rate``/``increase``: counters made cumulative across resets (a value lower than the
  one before is a reset; the counter restarted from 0, as Prometheus reads it), so the
  increase is the newest cumulative minus the oldest; ``rate`` divides it by the time
  between those two points (no extrapolation to the window's edges);
- ``delta``: the newest value minus the oldest (gauges);
- ``last``: the newest value.

A point's time is the sample's own timestamp (never later than its arrival). Points no
newer than the series' newest are ignored: a window sees each moment once, so a batch
delivered again cannot count twice.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable

MAX_POINTS = 10_000
QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


class Window(ABC):
    """The points of one series within ``span`` seconds of its newest; subclasses answer."""

    __slots__ = ("newest", "points", "span")

    def __init__(self, span: float):
        self.span = span
        self.points: deque[tuple[float, float]] = deque()
        self.newest = float("-inf")

    def add(self, at: float, value: float) -> bool:
        """Take a point; False (and nothing changes) when it is not newer than the newest."""
        if at <= self.newest:
            return False
        self.newest = at
        self._push(at, value)
        self.points.append((at, value))
        self.evict(at)
        if len(self.points) > MAX_POINTS:
            self._drop(*self.points.popleft())
        return True

    def evict(self, now: float) -> None:
        """Forget the points at or before ``now - span``: the window is (now - span, now]."""
        cutoff = now - self.span
        points = self.points
        while points and points[0][0] <= cutoff:
            self._drop(*points.popleft())

    @abstractmethod
    def value(self) -> float | None:
        """The function's value over the points in the window (None: no value yet)."""

    def _push(self, at: float, value: float) -> None:  # noqa: B027 - optional hook
        """Called before a point joins ``points``."""

    def _drop(self, at: float, value: float) -> None:  # noqa: B027 - optional hook
        """Called after a point left ``points``."""


class Last(Window):
    __slots__ = ()

    def value(self) -> float | None:
        return self.points[-1][1] if self.points else None


class Running(Window):
    """``sum``, ``avg`` and ``count`` from a running sum."""

    __slots__ = ("_dropped", "mode", "total")

    def __init__(self, span: float, mode: str):
        super().__init__(span)
        self.mode = mode
        self.total = 0.0
        self._dropped = 0

    def _push(self, at: float, value: float) -> None:
        self.total += value

    def _drop(self, at: float, value: float) -> None:
        self.total -= value
        self._dropped += 1
        if self._dropped > len(self.points) + 64:  # amortised O(1): fresh sum, no drift
            self.total = sum(v for _, v in self.points)
            self._dropped = 0

    def value(self) -> float | None:
        count = len(self.points)
        if not count:
            return None
        if self.mode == "count":
            return float(count)
        if self.mode == "sum":
            return self.total
        return self.total / count


class Extreme(Window):
    """``min`` or ``max``: a deque of the points that can still become the answer."""

    __slots__ = ("better", "candidates")

    def __init__(self, span: float, mode: str):
        super().__init__(span)
        self.candidates: deque[tuple[float, float]] = deque()
        self.better: Callable[[float, float], bool] = operator.le if mode == "min" else operator.ge

    def _push(self, at: float, value: float) -> None:
        candidates = self.candidates
        while candidates and self.better(value, candidates[-1][1]):
            candidates.pop()
        candidates.append((at, value))

    def _drop(self, at: float, value: float) -> None:
        if self.candidates and self.candidates[0][0] <= at:
            self.candidates.popleft()

    def value(self) -> float | None:
        return self.candidates[0][1] if self.candidates else None


class Quantile(Window):
    __slots__ = ("ordered", "q")

    def __init__(self, span: float, q: float):
        super().__init__(span)
        self.q = q
        self.ordered: list[float] = []

    def _push(self, at: float, value: float) -> None:
        insort(self.ordered, value)

    def _drop(self, at: float, value: float) -> None:
        del self.ordered[bisect_left(self.ordered, value)]

    def value(self) -> float | None:
        ordered = self.ordered
        if not ordered:
            return None
        rank = self.q * (len(ordered) - 1)
        low = int(rank)
        if low + 1 >= len(ordered):
            return ordered[low]
        return ordered[low] + (ordered[low + 1] - ordered[low]) * (rank - low)


class Counter(Window):
    """``increase`` and ``rate`` of a counter; points hold the cumulative count, resets
    included, so a restart of the counted process is no negative increase."""

    __slots__ = ("cumulative", "last_raw", "mode")

    def __init__(self, span: float, mode: str = "increase"):
        super().__init__(span)
        self.mode = mode
        self.cumulative = 0.0
        self.last_raw: float | None = None

    def add(self, at: float, value: float) -> bool:
        if at <= self.newest:
            return False
        if self.last_raw is not None:
            self.cumulative += value - self.last_raw if value >= self.last_raw else value
        self.last_raw = value
        return super().add(at, self.cumulative)

    def increase(self) -> float | None:
        points = self.points
        if len(points) < 2:
            return None
        return points[-1][1] - points[0][1]

    def value(self) -> float | None:
        grown = self.increase()
        if grown is None or self.mode == "increase":
            return grown
        elapsed = self.points[-1][0] - self.points[0][0]
        return grown / elapsed if elapsed > 0 else None


class Delta(Window):
    __slots__ = ()

    def value(self) -> float | None:
        points = self.points
        return points[-1][1] - points[0][1] if len(points) >= 2 else None


def window_for(function: str, span: float) -> Window:
    """A new, empty window computing ``function`` over ``span`` seconds."""
    if function in ("avg", "sum", "count"):
        return Running(span, function)
    if function in ("min", "max"):
        return Extreme(span, function)
    if function in QUANTILES:
        return Quantile(span, QUANTILES[function])
    if function in ("rate", "increase"):
        return Counter(span, function)
    if function == "delta":
        return Delta(span)
    if function == "last":
        return Last(span)
    raise ValueError(f"no window function {function!r}")
