"""Interval quantiles are within the sketch's relative accuracy, in bounded memory."""

from __future__ import annotations

import math
import random

from vigil_client.sketch import MAX_BINS, RELATIVE_ACCURACY, LatencySketch


def test_quantiles_within_relative_accuracy() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(3, 1.5) for _ in range(20_000)]
    sketch = LatencySketch()
    for value in values:
        sketch.add(value)
    ordered = sorted(values)
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = ordered[math.ceil(q * len(ordered)) - 1]
        assert abs(sketch.quantile(q) - exact) <= 2 * RELATIVE_ACCURACY * exact, q
    assert sketch.count == len(values)
    assert abs(sketch.mean - sum(values) / len(values)) < 1e-6 * sketch.mean


def test_bins_stay_bounded_and_high_quantiles_stay_exactish() -> None:
    sketch = LatencySketch()
    value = 0.002
    while value < 1e7:
        sketch.add(value)
        value *= 1.01
    assert len(sketch.bins) <= MAX_BINS
    assert abs(sketch.quantile(1.0) - sketch.max) < 1e-9
    top = sketch.quantile(0.99)
    assert top > 0.5 * sketch.max


def test_empty_and_zero_durations() -> None:
    sketch = LatencySketch()
    assert sketch.quantile(0.95) == 0.0
    sketch.add(0.0)
    assert sketch.quantile(0.5) == 0.0
