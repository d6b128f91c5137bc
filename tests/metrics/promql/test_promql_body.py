"""The response body built in bulk is byte for byte orjson's dump of ``to_prometheus()``."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from services.metrics.promql import Engine, Result, prometheus_body
from services.metrics.promql.body import value_texts
from services.metrics.promql.format import format_value
from tests.metrics.promql.dataset import build_source
from tests.metrics.promql.memory_source import MemorySource
from tests.metrics.promql.test_promql_golden import EXPRESSIONS

M = 60_000


def expected(result: Result) -> bytes:
    return orjson.dumps({"status": "success", "data": result.to_prometheus()})


@pytest.mark.parametrize(("expr", "minutes"), EXPRESSIONS)
async def test_golden_queries_give_the_same_body(expr: str, minutes: int) -> None:
    engine = Engine(build_source())
    instant = await engine.instant(expr, minutes * M)
    assert prometheus_body(instant) == expected(instant)
    ranged = await engine.range(expr, 0, 30 * M, M)
    assert prometheus_body(ranged) == expected(ranged)
    odd = await engine.range(expr, 1_234, 20 * M + 1_234, 45_500)  # fractional seconds
    assert prometheus_body(odd) == expected(odd)


async def test_range_vector_in_an_instant_query() -> None:
    engine = Engine(build_source())
    result = await engine.instant("cpu_usage[5m]", 10 * M + 500)
    assert orjson.loads(prometheus_body(result))["data"]["resultType"] == "matrix"
    assert prometheus_body(result) == expected(result)


def special_values(rng: np.random.Generator, n: int) -> np.ndarray:
    exponents = rng.integers(-12, 25, n).astype(np.float64)
    values = rng.uniform(-10, 10, n) * 10.0**exponents
    rounded = rng.random(n) < 0.3
    values[rounded] = np.round(values[rounded])
    picks = rng.random(n)
    values[picks < 0.02] = math.nan
    values[(picks >= 0.02) & (picks < 0.03)] = math.inf
    values[(picks >= 0.03) & (picks < 0.04)] = -math.inf
    values[(picks >= 0.04) & (picks < 0.05)] = -0.0
    values[(picks >= 0.05) & (picks < 0.06)] = 0.0
    return values


@pytest.mark.parametrize("seed", range(5))
def test_values_print_like_go_in_bulk(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = special_values(rng, 20_000)
    assert value_texts(values) == [format_value(v).encode() for v in values.tolist()]
    plain = np.round(rng.uniform(-1e6, 1e6, 20_000), int(rng.integers(0, 8)))
    assert value_texts(plain) == [format_value(v).encode() for v in plain.tolist()]
    integral = np.trunc(rng.uniform(0, 1e14, 20_000))
    assert value_texts(integral) == [format_value(v).encode() for v in integral.tolist()]


async def test_series_with_gaps_and_odd_values() -> None:
    rng = np.random.default_rng(7)
    source = MemorySource()
    for i in range(20):
        ts = np.sort(rng.choice(np.arange(0, 3_600_000, 7_500), 200, replace=False))
        source.add({"__name__": "v", "i": f"{i:02d}", "q": '"x",]'}, ts, special_values(rng, 200))
    engine = Engine(source)
    for query in ("v", "v * 2", "v > 0", "sum by (q) (v)", "time()", "-v"):
        result = await engine.range(query, 0, 3_600_000, 30_000)
        assert prometheus_body(result) == expected(result), query
        result = await engine.instant(query, 1_800_000)
        assert prometheus_body(result) == expected(result), query
    result = await engine.instant("v[10m]", 1_800_000)
    assert prometheus_body(result) == expected(result)
