"""A bounded, log-bucketed latency sketch (DDSketch-style) for an interval's quantiles."""

from __future__ import annotations

import math

RELATIVE_ACCURACY = 0.01
MAX_BINS = 512
# durations at or below this (ms) share one bucket: they are all "instant"
MIN_MS = 0.001


class LatencySketch:
    """Quantiles within ~1% of the true value in at most ``MAX_BINS`` buckets.

    Keeping every duration of an interval would grow with traffic; this keeps a count per
    logarithmic bucket. Past ``MAX_BINS`` the lowest buckets are merged, so the high
    quantiles alerts watch keep their accuracy.
    """

    _GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
    _LOG_GAMMA = math.log(_GAMMA)

    __slots__ = ("bins", "count", "max", "sum", "zeros")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.zeros = 0
        self.count = 0
        self.sum = 0.0
        self.max = 0.0

    def add(self, value_ms: float) -> None:
        self.count += 1
        self.sum += value_ms
        if value_ms > self.max:
            self.max = value_ms
        if value_ms <= MIN_MS:
            self.zeros += 1
            return
        index = math.ceil(math.log(value_ms) / self._LOG_GAMMA)
        self.bins[index] = self.bins.get(index, 0) + 1
        if len(self.bins) > MAX_BINS:
            self._collapse_lowest()

    def _collapse_lowest(self) -> None:
        lowest, second = sorted(self.bins)[:2]
        self.bins[second] += self.bins.pop(lowest)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1) by nearest rank; 0 when nothing was added.

        Nearest rank rounds up: the p95 of two requests is the slower one, so a slow
        request on a quiet route is not hidden by a fast one.
        """
        if self.count == 0:
            return 0.0
        if q >= 1.0:
            return self.max
        rank = max(1, math.ceil(q * self.count - 1e-9))
        seen = self.zeros
        if rank <= seen:
            return 0.0
        for index in sorted(self.bins):
            seen += self.bins[index]
            if rank <= seen:
                estimate = 2 * self._GAMMA**index / (self._GAMMA + 1)
                return min(estimate, self.max)
        return self.max

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else 0.0
