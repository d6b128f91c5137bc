"""What the PromQL engine asks of a store, and the shape of what comes back.

The engine never picks a resolution itself: it says which window and step matter and
which per-bucket aggregate a function needs, and the store answers from raw samples or
from the coarsest rollup that still fits (see ``docs/architecture.md``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt


class MatchOp(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    RE = "=~"
    NOT_RE = "!~"


@dataclass(frozen=True)
class LabelMatcher:
    """One ``name op value`` of a selector; ``__name__`` selects the metric name.
    Regexes are fully anchored, as in Prometheus."""

    name: str
    op: MatchOp
    value: str


class Want(StrEnum):
    """Which value of each rollup bucket a function needs when the store answers from
    rollups; from raw samples every choice returns the samples themselves."""

    LAST = "last"  # instant selectors, rate/increase/irate/delta/resets/changes: (last_ts, last)
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    AVG = "avg"  # sum / count


@dataclass(frozen=True)
class SeriesData:
    """One series' points in [start_ms, end_ms], oldest first, timestamps strictly rising."""

    labels: dict[str, str]  # includes __name__
    ts: npt.NDArray[np.int64]  # Unix milliseconds
    values: npt.NDArray[np.float64]
    # 0 for raw samples; the rollup bucket otherwise. With Want.COUNT the points are then
    # counts of samples per bucket, which count_over_time adds up instead of counting.
    resolution_ms: int = 0


class SeriesSource(ABC):
    """The store as the engine sees it. Every call is bounded by [start_ms, end_ms]."""

    @abstractmethod
    async def select(
        self,
        matchers: Sequence[LabelMatcher],
        start_ms: int,
        end_ms: int,
        *,
        step_ms: int,
        range_ms: int,
        want: Want,
    ) -> list[SeriesData]:
        """Series matching every matcher with their points in the interval.

        ``step_ms`` (0 for an instant query) and ``range_ms`` bound the resolution: a
        rollup is used only when its bucket is no longer than either. ``range_ms`` is what
        the engine can do with: the range window for ``*_over_time``; a quarter of it for
        the functions of changes between points (rate, increase, irate, delta, idelta,
        deriv, predict_linear, resets, changes), so each window still holds about four
        points; for an instant selector the lookback delta, or the step of a range query
        when longer (the engine then widens its lookback by one bucket, since a bucket's
        point is stamped at its newest sample). A series with no point in the interval is
        left out.
        """

    @abstractmethod
    async def series(
        self, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[dict[str, str]]:
        """Label sets of the series matching every matcher with a point in the interval."""

    @abstractmethod
    async def label_names(
        self, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[str]:
        """Sorted label names of those series (of all series when no matcher is given)."""

    @abstractmethod
    async def label_values(
        self, name: str, matchers: Sequence[LabelMatcher], start_ms: int, end_ms: int
    ) -> list[str]:
        """Sorted values of label ``name`` over those series."""
