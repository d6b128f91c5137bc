"""The engine's contract with its callers: result shapes and number formats of
Prometheus' HTTP API, its error types, and what it asks of the store."""

from __future__ import annotations

import math

import pytest

from services.metrics.promql import Engine, PromQLError
from services.metrics.promql.format import format_value
from services.metrics.promql.source import MatchOp, Want
from tests.metrics.promql.memory_source import MemorySource

S = 1000


async def test_instant_vector_shape(engine: Engine) -> None:
    data = (await engine.instant("g", 45_500)).to_prometheus()
    assert data == {
        "resultType": "vector",
        "result": [{"metric": {"__name__": "g", "k": "v"}, "value": [45.5, "6"]}],
    }


async def test_range_matrix_shape_and_sorting(engine: Engine) -> None:
    data = (await engine.range("m * 0.5 or g", 0, 30 * S, 15 * S)).to_prometheus()
    assert data["resultType"] == "matrix"
    assert data["result"][0] == {
        "metric": {"__name__": "g", "k": "v"},
        "values": [[0, "1"], [15, "3"], [30, "2"]],
    }
    assert [item["metric"] for item in data["result"][1:]] == [
        {"h": "x", "n": "1"},
        {"h": "x", "n": "2"},
        {"h": "y", "n": "1"},
    ]
    assert data["result"][1]["values"] == [[0, "0.5"], [15, "0.5"], [30, "0.5"]]


async def test_series_absent_at_some_steps_only_lists_its_points(engine: Engine) -> None:
    data = (await engine.range("g > 2", 0, 45 * S, 15 * S)).to_prometheus()
    assert data["result"] == [
        {"metric": {"__name__": "g", "k": "v"}, "values": [[15, "3"], [45, "6"]]}
    ]


async def test_scalar_and_string_results(engine: Engine) -> None:
    assert (await engine.instant("1 / 0", 1500)).to_prometheus() == {
        "resultType": "scalar",
        "result": [1.5, "+Inf"],
    }
    assert (await engine.instant("-1 / 0", 0)).to_prometheus()["result"][1] == "-Inf"
    assert (await engine.instant("0 / 0", 0)).to_prometheus()["result"][1] == "NaN"
    assert (await engine.instant('"hello"', 2000)).to_prometheus() == {
        "resultType": "string",
        "result": [2, "hello"],
    }
    data = (await engine.range("time()", 0, 2 * S, S)).to_prometheus()
    assert data == {
        "resultType": "matrix",
        "result": [{"metric": {}, "values": [[0, "0"], [1, "1"], [2, "2"]]}],
    }


async def test_range_selector_in_an_instant_query_is_a_matrix(engine: Engine) -> None:
    data = (await engine.instant("g[20s]", 45 * S)).to_prometheus()
    assert data == {
        "resultType": "matrix",
        "result": [{"metric": {"__name__": "g", "k": "v"}, "values": [[30, "2"], [45, "6"]]}],
    }


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e21, "1000000000000000000000"),
        (1e-7, "0.0000001"),
        (0.1, "0.1"),
        (-0.0, "-0"),
        (123456789.125, "123456789.125"),
        (1 / 3, "0.3333333333333333"),
    ],
)
async def test_values_print_like_go(value: float, text: str) -> None:
    source = MemorySource()
    source.add({"__name__": "v"}, [0], [value])
    data = (await Engine(source).instant("v", 0)).to_prometheus()
    assert data["result"][0]["value"][1] == text


@pytest.mark.parametrize(
    "query",
    ["sum(", "rate(g)", "foo(g)", "g{", "1 > 2", "topk(g, m)", "sum(g) by (", 'g{a=~"("}'],
)
async def test_bad_queries_are_bad_data(engine: Engine, query: str) -> None:
    with pytest.raises(PromQLError) as info:
        await engine.instant(query, 0)
    assert info.value.error_type == "bad_data"
    assert info.value.message


async def test_bad_range_parameters_are_bad_data(engine: Engine) -> None:
    for args in ((0, 10, 0), (10, 0, 1), (0, 11_000 * S, S)):
        with pytest.raises(PromQLError) as info:
            await engine.range("g", *args)
        assert info.value.error_type == "bad_data"
    with pytest.raises(PromQLError) as info:
        await engine.range("g[1m]", 0, 10 * S, S)
    assert info.value.error_type == "bad_data"
    assert "range vector" in info.value.message
    # 11,000 points is the limit, inclusive
    await engine.range("g", 0, 10_999 * S, S)


async def test_many_to_many_matching_is_an_execution_error(engine: Engine) -> None:
    with pytest.raises(PromQLError) as info:
        await engine.instant("info * on(h) m", 0)  # two m per h on the right
    assert info.value.error_type == "execution"
    with pytest.raises(PromQLError) as info:
        await engine.instant("m + on(h) info", 0)  # two m per h on the left, no group_left
    assert info.value.error_type == "execution"


async def test_duplicate_series_after_dropping_names_is_an_execution_error(
    engine: Engine,
) -> None:
    with pytest.raises(PromQLError) as info:
        await engine.instant('abs({__name__=~"pos|neg"})', 0)  # both become {}
    assert info.value.error_type == "execution"
    assert "same labelset" in info.value.message


async def test_too_many_series_is_an_execution_error(source: MemorySource) -> None:
    engine = Engine(source, max_series=2)
    with pytest.raises(PromQLError) as info:
        await engine.instant("m", 0)
    assert info.value.error_type == "execution"


async def test_store_is_asked_for_the_right_aggregate_window_and_step(
    source: MemorySource,
) -> None:
    engine = Engine(source)
    # (query, want, window read, longest bucket allowed besides the step)
    expectations = [
        ("g", Want.LAST, 360 * S, 300 * S),  # the lookback, and one step for buckets
        ("rate(g[1m])", Want.LAST, 60 * S, 15 * S),  # a quarter: several points a window
        ("irate(g[1m])", Want.LAST, 60 * S, 15 * S),
        ("increase(g[2m])", Want.LAST, 120 * S, 30 * S),
        ("deriv(g[4m])", Want.LAST, 240 * S, 60 * S),
        ("changes(g[4m])", Want.LAST, 240 * S, 60 * S),
        ("min_over_time(g[5m])", Want.MIN, 300 * S, 300 * S),
        ("max_over_time(g[5m])", Want.MAX, 300 * S, 300 * S),
        ("sum_over_time(g[5m])", Want.SUM, 300 * S, 300 * S),
        ("count_over_time(g[5m])", Want.COUNT, 300 * S, 300 * S),
        ("avg_over_time(g[5m])", Want.AVG, 300 * S, 300 * S),
    ]
    for query, want, window, range_ms in expectations:
        source.calls.clear()
        await engine.range(query, 600 * S, 3600 * S, 60 * S)
        assert source.calls == [(600 * S - window, 3600 * S, 60 * S, range_ms, want)], query
    source.calls.clear()
    await engine.range("g", 0, 86_400 * S, 3600 * S)  # a long chart: hour buckets will do
    assert source.calls == [(-3900 * S, 86_400 * S, 3600 * S, 3600 * S, Want.LAST)]
    source.calls.clear()
    await engine.instant("g offset 1m", 600 * S)
    assert source.calls == [(-60 * S, 540 * S, 0, 300 * S, Want.LAST)]


async def test_matchers_reach_the_store(source: MemorySource) -> None:
    seen = []
    original = source.select

    async def spy(matchers, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(list(matchers))
        return await original(matchers, *args, **kwargs)

    source.select = spy  # type: ignore[method-assign]
    await Engine(source).instant('m{h=~"x|y", n!="2"}', 0)
    assert [(m.name, m.op, m.value) for m in seen[0]] == [
        ("__name__", MatchOp.EQUAL, "m"),
        ("h", MatchOp.RE, "x|y"),
        ("n", MatchOp.NOT_EQUAL, "2"),
    ]


async def test_range_query_equals_instant_queries_at_each_step(engine: Engine) -> None:
    for query in [
        "rate(c[30s])",
        "sum by (h) (m)",
        "topk(1, g)",
        "histogram_quantile(0.5, h_bucket)",
        "g > bool 2",
        "max_over_time(g[30s:15s])",
    ]:
        ranged = (await engine.range(query, 0, 75 * S, 15 * S)).to_prometheus()["result"]
        for step in range(0, 76, 15):
            instant = (await engine.instant(query, step * S)).to_prometheus()["result"]
            from_range = [
                {"metric": item["metric"], "value": point}
                for item in ranged
                for point in item["values"]
                if point[0] == step
            ]
            assert sorted(map(str, from_range)) == sorted(map(str, instant)), (query, step)


@pytest.mark.parametrize(
    "values",
    [
        [1.0, 2.0, 40.0],  # integers
        [0.5, 1 / 3, -2.25],  # plain decimals
        [-0.0, 1.0],
        [0.5, 1e-5, 1e21, math.inf, -math.inf, math.nan, 3.0],
    ],
)
async def test_range_values_print_like_go(values: list[float]) -> None:
    source = MemorySource()
    source.add({"__name__": "v"}, [i * S for i in range(len(values))], values)
    data = (await Engine(source).range("v", 0, (len(values) - 1) * S, S)).to_prometheus()
    assert [text for _, text in data["result"][0]["values"]] == [format_value(v) for v in values]


async def test_count_over_time_adds_up_rollup_counts() -> None:
    # Three 1-minute buckets holding 6, 6 and 4 samples.
    source = MemorySource(resolution_ms=60 * S)
    source.add({"__name__": "v"}, [0, 60 * S, 120 * S], [6, 6, 4])
    assert (await Engine(source).instant("count_over_time(v[2m])", 120 * S)).to_prometheus()[
        "result"
    ] == [{"metric": {}, "value": [120, "16"]}]


async def test_or_matchers_select_each_series_once(engine: Engine) -> None:
    data = (await engine.instant('m{h="x" or n="1"}', 0)).to_prometheus()
    assert sorted((i["metric"]["h"], i["metric"]["n"]) for i in data["result"]) == [
        ("x", "1"),
        ("x", "2"),
        ("y", "1"),
    ]


async def test_sample_limit_and_timeout(source: MemorySource) -> None:
    with pytest.raises(PromQLError) as info:
        await Engine(source, max_samples=4).instant("c[1m]", 60 * S)  # 5 samples
    assert info.value.error_type == "execution"
    await Engine(source, max_samples=5).instant("c[1m]", 60 * S)
    with pytest.raises(PromQLError) as info:
        await Engine(source, timeout_s=0).instant("c", 60 * S)
    assert info.value.error_type == "timeout"


async def test_label_replace_with_a_bad_regex_is_an_execution_error(engine: Engine) -> None:
    with pytest.raises(PromQLError) as info:
        await engine.instant('label_replace(g, "a", "b", "k", "(")', 45 * S)
    assert info.value.error_type == "execution"
