"""Fixtures for the PromQL engine tests: a small data set whose answers are worked out
by hand in the tests themselves."""

from __future__ import annotations

import pytest

from services.metrics.promql import Engine
from tests.metrics.promql.dataset import STALE_NAN
from tests.metrics.promql.memory_source import MemorySource

S = 1000  # ms per second


@pytest.fixture
def source() -> MemorySource:
    src = MemorySource()
    # A counter scraped every 15 s.
    src.add({"__name__": "c", "i": "a"}, [0, 15 * S, 30 * S, 45 * S, 60 * S], [0, 10, 20, 30, 40])
    # A counter that starts late (extrapolation stops at its zero point).
    src.add({"__name__": "z"}, [30 * S, 45 * S, 60 * S], [5, 10, 15])
    # A counter that resets.
    src.add({"__name__": "r"}, [0, 15 * S, 30 * S, 45 * S], [10, 20, 5, 15])
    # A gauge.
    src.add({"__name__": "g", "k": "v"}, [0, 15 * S, 30 * S, 45 * S], [1, 3, 2, 6])
    # A series that went stale.
    src.add({"__name__": "s"}, [0, 15 * S], [1, STALE_NAN])
    # An instant vector to aggregate.
    src.add({"__name__": "m", "h": "x", "n": "1"}, [0], [1])
    src.add({"__name__": "m", "h": "x", "n": "2"}, [0], [3])
    src.add({"__name__": "m", "h": "y", "n": "1"}, [0], [8])
    src.add({"__name__": "info", "h": "x", "dc": "eu"}, [0], [1])
    src.add({"__name__": "info", "h": "y", "dc": "us"}, [0], [1])
    # A classic histogram.
    for le, count in (("1", 2), ("2", 6), ("+Inf", 8)):
        src.add({"__name__": "h_bucket", "le": le}, [0], [count])
    for le, count in (("1", 2), ("2", 6)):
        src.add({"__name__": "noinf_bucket", "le": le}, [0], [count])
    src.add({"__name__": "neg"}, [0], [-2.5])
    src.add({"__name__": "pos"}, [0], [2.5])
    return src


@pytest.fixture
def engine(source: MemorySource) -> Engine:
    return Engine(source)
