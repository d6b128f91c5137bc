"""Every supported function and operator on small inputs, with the expected values
worked out by hand in the comments."""

from __future__ import annotations

import math

import pytest

from services.metrics.promql import Engine

S = 1000


async def at(engine: Engine, query: str, seconds: float) -> dict[str, float]:
    """Instant query → {label text: value}; label text is ``k=v,...`` sorted, name first."""
    data = (await engine.instant(query, round(seconds * S))).to_prometheus()
    if data["resultType"] == "scalar":
        return {"scalar": float(data["result"][1])}
    assert data["resultType"] == "vector"
    out = {}
    for item in data["result"]:
        key = ",".join(f"{k}={v}" for k, v in sorted(item["metric"].items()))
        out[key] = float(item["value"][1])
    return out


async def one(engine: Engine, query: str, seconds: float) -> float:
    values = await at(engine, query, seconds)
    assert len(values) == 1, values
    return next(iter(values.values()))


# -- counters ------------------------------------------------------------------------


async def test_rate_over_a_fully_covered_window(engine: Engine) -> None:
    # Samples 0..40 at 0..60 s fill [0, 60] exactly: 40 / 60 s.
    assert await at(engine, "rate(c[1m])", 60) == {"i=a": 40 / 60}
    assert await one(engine, "increase(c[1m])", 60) == 40


async def test_rate_extrapolates_to_the_window_end(engine: Engine) -> None:
    # [15, 75]: 10→40 over 45 s; 15 s to the end < 1.1 x 15 s, so extrapolated over 60 s.
    assert await one(engine, "increase(c[1m])", 75) == 30 * 60 / 45
    assert await one(engine, "rate(c[1m])", 75) == 30 * (60 / 45) / 60


async def test_increase_stops_extrapolating_at_the_counters_zero_point(engine: Engine) -> None:
    # 5→15 over [30, 60]; to start is 30 s but zero is reached 15 s before the first
    # sample (30 x 5 / 10), and 15 < 16.5: interval 30 + 15 = 45 s → 10 x 45 / 30.
    assert await one(engine, "increase(z[1m])", 60) == 15


async def test_counter_resets_are_corrected(engine: Engine) -> None:
    # 10, 20, 5, 15: 15 - 10 + 20 (value before the reset) = 25 over the full window.
    assert await one(engine, "increase(r[45s])", 45) == 25
    assert await one(engine, "resets(r[45s])", 45) == 1
    assert await one(engine, "changes(r[45s])", 45) == 3
    # irate: last two samples; after a reset the last value itself is the increase.
    assert await one(engine, "irate(r[1m])", 45) == pytest.approx(10 / 15, rel=1e-15)
    assert await one(engine, "irate(r[1m])", 30) == pytest.approx(5 / 15, rel=1e-15)
    assert await one(engine, "idelta(r[1m])", 30) == -15


async def test_rate_needs_two_samples(engine: Engine) -> None:
    assert await at(engine, "rate(c[10s])", 60) == {}
    assert await at(engine, "irate(c[10s])", 60) == {}


async def test_delta_of_a_gauge(engine: Engine) -> None:
    # 1, 3, 2, 6 over [0, 45]: 6 - 1, no extrapolation needed.
    assert await one(engine, "delta(g[45s])", 45) == 5
    assert await one(engine, "idelta(g[45s])", 45) == 4


# -- *_over_time -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("sum_over_time", 12),
        ("avg_over_time", 3),
        ("min_over_time", 1),
        ("max_over_time", 6),
        ("count_over_time", 4),
        ("last_over_time", 6),
        ("present_over_time", 1),
        # deviations from 3: -2, 0, -1, 3 → (4 + 0 + 1 + 9) / 4
        ("stdvar_over_time", 3.5),
        ("stddev_over_time", math.sqrt(3.5)),
    ],
)
async def test_over_time(engine: Engine, function: str, expected: float) -> None:
    assert await one(engine, f"{function}(g[45s])", 45) == expected


async def test_over_time_windows_are_closed_at_both_ends(engine: Engine) -> None:
    # [30, 45] holds 2 and 6.
    assert await one(engine, "sum_over_time(g[15s])", 45) == 8


async def test_quantile_over_time_interpolates(engine: Engine) -> None:
    # sorted 1, 2, 3, 6; rank 0.5 x 3 = 1.5 → halfway between 2 and 3.
    assert await one(engine, "quantile_over_time(0.5, g[45s])", 45) == 2.5
    assert await one(engine, "quantile_over_time(1, g[45s])", 45) == 6
    assert await one(engine, "quantile_over_time(2, g[45s])", 45) == math.inf


async def test_last_over_time_keeps_the_name_others_drop_it(engine: Engine) -> None:
    assert await at(engine, "last_over_time(g[1m])", 45) == {"__name__=g,k=v": 6}
    assert await at(engine, "max_over_time(g[1m])", 45) == {"k=v": 6}


async def test_absent_over_time(engine: Engine) -> None:
    assert await at(engine, 'absent_over_time(nope{a="b",c=~"x"}[1m])', 45) == {"a=b": 1}
    assert await at(engine, "absent_over_time(g[1m])", 45) == {}


async def test_subquery(engine: Engine) -> None:
    # g evaluated at 0, 15, 30, 45 s: 1, 3, 2, 6.
    assert await one(engine, "max_over_time(g[45s:15s])", 45) == 6
    assert await one(engine, "sum_over_time(g[45s:15s])", 45) == 12


# -- instant selectors -------------------------------------------------------------


async def test_lookback_and_offset_and_at(engine: Engine) -> None:
    assert await one(engine, "g", 45 + 300) == 6  # exactly 5 m old: still seen
    assert await at(engine, "g", 45 + 300.001) == {}
    assert await one(engine, "g offset 15s", 45) == 2
    assert await one(engine, "g @ 15", 45) == 3
    assert await one(engine, "g @ 15", 500) == 3


async def test_stale_marker_ends_a_series(engine: Engine) -> None:
    assert await one(engine, "s", 10) == 1
    assert await at(engine, "s", 20) == {}
    assert await one(engine, "count_over_time(s[1m])", 20) == 1


async def test_matchers(engine: Engine) -> None:
    assert set(await at(engine, 'm{h="x"}', 0)) == {"__name__=m,h=x,n=1", "__name__=m,h=x,n=2"}
    assert set(await at(engine, 'm{h!="x"}', 0)) == {"__name__=m,h=y,n=1"}
    assert set(await at(engine, 'm{n=~"2|3"}', 0)) == {"__name__=m,h=x,n=2"}
    assert set(await at(engine, 'm{h!~"x|z"}', 0)) == {"__name__=m,h=y,n=1"}
    assert set(await at(engine, '{__name__=~"m|info", h="y"}', 0)) == {
        "__name__=m,h=y,n=1",
        "__name__=info,dc=us,h=y",
    }


# -- aggregations ------------------------------------------------------------------


async def test_aggregations(engine: Engine) -> None:
    # m: x/1 = 1, x/2 = 3, y/1 = 8
    assert await at(engine, "sum by (h) (m)", 0) == {"h=x": 4, "h=y": 8}
    assert await at(engine, "avg by (h) (m)", 0) == {"h=x": 2, "h=y": 8}
    assert await at(engine, "min by (h) (m)", 0) == {"h=x": 1, "h=y": 8}
    assert await at(engine, "max without (n) (m)", 0) == {"h=x": 3, "h=y": 8}
    assert await at(engine, "count without (n) (m)", 0) == {"h=x": 2, "h=y": 1}
    assert await at(engine, "group by (n) (m)", 0) == {"n=1": 1, "n=2": 1}
    assert await at(engine, "sum(m)", 0) == {"": 12}
    # mean 4, squared deviations 9 + 1 + 16 = 26
    assert await one(engine, "stdvar(m)", 0) == pytest.approx(26 / 3, rel=1e-15)
    assert await one(engine, "stddev(m)", 0) == pytest.approx(math.sqrt(26 / 3), rel=1e-15)
    # sorted 1, 3, 8: rank 0.75 x 2 = 1.5 → halfway between 3 and 8
    assert await one(engine, "quantile(0.75, m)", 0) == 5.5


async def test_topk_bottomk_keep_labels_and_order(engine: Engine) -> None:
    data = (await engine.instant("topk(2, m)", 0)).to_prometheus()
    assert [item["metric"]["n"] + item["metric"]["h"] for item in data["result"]] == ["1y", "2x"]
    assert await at(engine, "bottomk(1, m) by (h)", 0) == {
        "__name__=m,h=x,n=1": 1,
        "__name__=m,h=y,n=1": 8,
    }


async def test_count_values(engine: Engine) -> None:
    assert await at(engine, 'count_values("v", m)', 0) == {"v=1": 1, "v=3": 1, "v=8": 1}
    assert await at(engine, 'count_values("v", info)', 0) == {"v=1": 2}


# -- histogram_quantile ------------------------------------------------------------


async def test_histogram_quantile(engine: Engine) -> None:
    # buckets ≤1: 2, ≤2: 6, +Inf: 8
    # q=0.5: rank 4 falls in (1, 2] holding 4: 1 + (4 - 2) / 4 = 1.5
    assert await at(engine, "histogram_quantile(0.5, h_bucket)", 0) == {"": 1.5}
    # q=0.1: rank 0.8 in the first bucket, which starts at 0: 0.8 / 2
    assert await one(engine, "histogram_quantile(0.1, h_bucket)", 0) == 0.4
    # q=0.9: rank 7.2 beyond the last finite bucket: its upper bound
    assert await one(engine, "histogram_quantile(0.9, h_bucket)", 0) == 2
    assert await one(engine, "histogram_quantile(1.5, h_bucket)", 0) == math.inf
    assert await one(engine, "histogram_quantile(-1, h_bucket)", 0) == -math.inf
    # no +Inf bucket: NaN
    assert math.isnan(await one(engine, "histogram_quantile(0.5, noinf_bucket)", 0))


# -- operators ----------------------------------------------------------------------


async def test_arithmetic(engine: Engine) -> None:
    assert await at(engine, 'm{h="y"} * 2 + 1', 0) == {"h=y,n=1": 17}
    assert await at(engine, '10 - m{h="y"}', 0) == {"h=y,n=1": 2}
    assert await one(engine, 'm{h="y"} % 3', 0) == 2
    assert await one(engine, 'm{h="y"} ^ 2', 0) == 64
    assert await one(engine, 'm{h="y"} / 0', 0) == math.inf
    assert await at(engine, "2 ^ 3 ^ 2", 0) == {"scalar": 512}
    assert await at(engine, '-m{h="y"}', 0) == {"h=y,n=1": -8}


async def test_comparisons_filter_or_return_bool(engine: Engine) -> None:
    assert await at(engine, "m > 2", 0) == {"__name__=m,h=x,n=2": 3, "__name__=m,h=y,n=1": 8}
    # the vector's value is kept even when it is on the right
    assert await at(engine, "2 < m", 0) == {"__name__=m,h=x,n=2": 3, "__name__=m,h=y,n=1": 8}
    assert await at(engine, "m >= bool 3", 0) == {"h=x,n=1": 0, "h=x,n=2": 1, "h=y,n=1": 1}
    assert await at(engine, "m == bool 3", 0) == {"h=x,n=1": 0, "h=x,n=2": 1, "h=y,n=1": 0}
    assert await at(engine, "m != 3", 0) == {"__name__=m,h=x,n=1": 1, "__name__=m,h=y,n=1": 8}
    assert await at(engine, "m <= 1", 0) == {"__name__=m,h=x,n=1": 1}
    assert await at(engine, "1 < bool 2", 0) == {"scalar": 1}


async def test_vector_matching(engine: Engine) -> None:
    assert await at(engine, "m * on(h) group_left(dc) info", 0) == {
        "dc=eu,h=x,n=1": 1,
        "dc=eu,h=x,n=2": 3,
        "dc=us,h=y,n=1": 8,
    }
    assert await at(engine, "info * on(h) group_right(dc) m", 0) == {
        "dc=eu,h=x,n=1": 1,
        "dc=eu,h=x,n=2": 3,
        "dc=us,h=y,n=1": 8,
    }
    # one-to-one with on(): only the on labels remain
    assert await at(engine, 'm{n="1"} + on(h) info', 0) == {"h=x": 2, "h=y": 9}
    assert await at(engine, 'm{n="1"} - ignoring(n, dc) info', 0) == {"h=x": 0, "h=y": 7}
    # a comparison keeps the name, but one-to-one on() keeps only the on labels
    assert await at(engine, 'm{n="1"} > on(h) info', 0) == {"h=y": 8}
    assert await at(engine, 'm{n="1"} > ignoring(n, dc) info', 0) == {"__name__=m,h=y": 8}


async def test_set_operators(engine: Engine) -> None:
    assert set(await at(engine, 'm and on(h) info{dc="eu"}', 0)) == {
        "__name__=m,h=x,n=1",
        "__name__=m,h=x,n=2",
    }
    assert set(await at(engine, 'm unless on(h) info{dc="eu"}', 0)) == {"__name__=m,h=y,n=1"}
    assert set(await at(engine, 'm{h="x"} or info', 0)) == {
        "__name__=m,h=x,n=1",
        "__name__=m,h=x,n=2",
        "__name__=info,dc=eu,h=x",
        "__name__=info,dc=us,h=y",
    }
    assert set(await at(engine, 'm{h="x"} or on(h) info', 0)) == {
        "__name__=m,h=x,n=1",
        "__name__=m,h=x,n=2",
        "__name__=info,dc=us,h=y",
    }


# -- functions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("abs(neg)", 2.5),
        ("ceil(neg)", -2),
        ("floor(neg)", -3),
        ("round(neg)", -2),  # half up
        ("round(pos)", 3),
        ("round(pos, 2)", 2),  # floor(2.5 / 2 + 0.5) x 2
        ("clamp(neg, -1, 1)", -1),
        ("clamp_min(neg, 0)", 0),
        ("clamp_max(pos, 1)", 1),
        ("sqrt(pos * 10)", 5),
        ("exp(pos - 2.5)", 1),
        ("ln(pos * 0 + 1)", 0),
        ("log2(pos * 0 + 8)", 3),
        ("log10(pos * 0 + 1000)", 3),
        ("timestamp(g)", 45),
        ("sin(pos * 0 + pi() / 2)", 1),
        ("cos(pos * 0)", 1),
        ("tan(pos * 0 + pi() / 4)", 1),
        ("asin(pos * 0 + 1)", math.pi / 2),
        ("acos(pos * 0 + 1)", 0),
        ("atan(pos * 0 + 1)", math.pi / 4),
        ("sinh(pos * 0)", 0),
        ("cosh(pos * 0)", 1),
        ("tanh(pos * 0)", 0),
        ("asinh(pos * 0)", 0),
        ("acosh(pos * 0 + 1)", 0),
        ("atanh(pos * 0)", 0),
        ("deg(pos * 0 + pi())", 180),
        ("rad(pos * 0 + 180)", math.pi),
        ("sgn(neg)", -1),
        ("pos atan2 (pos * 0)", math.pi / 2),
    ],
)
async def test_instant_functions(engine: Engine, query: str, expected: float) -> None:
    assert await one(engine, query, 50) == pytest.approx(expected, rel=1e-15)


async def test_math_functions_drop_the_name(engine: Engine) -> None:
    assert await at(engine, "abs(g)", 45) == {"k=v": 6}


async def test_clamp_with_max_below_min_is_empty(engine: Engine) -> None:
    assert await at(engine, "clamp(pos, 3, 1)", 0) == {}


async def test_scalar_vector_time(engine: Engine) -> None:
    assert await at(engine, "scalar(g)", 45) == {"scalar": 6}
    assert math.isnan((await at(engine, "scalar(m)", 0))["scalar"])  # three elements
    assert await at(engine, "vector(7)", 0) == {"": 7}
    assert await at(engine, "time()", 12.5) == {"scalar": 12.5}
    assert await at(engine, "vector(time()) + on() g", 45) == {"": 51}


async def test_label_replace_and_join(engine: Engine) -> None:
    assert await at(engine, 'label_replace(info, "site", "dc-$1", "dc", "(e.)")', 0) == {
        "__name__=info,dc=eu,h=x,site=dc-eu": 1,
        "__name__=info,dc=us,h=y": 1,
    }
    assert await at(engine, 'label_replace(g, "k", "", "k", ".*")', 45) == {"__name__=g": 6}
    assert await at(engine, 'label_join(info, "both", "/", "h", "dc")', 0) == {
        "__name__=info,both=x/eu,dc=eu,h=x": 1,
        "__name__=info,both=y/us,dc=us,h=y": 1,
    }


async def test_sort(engine: Engine) -> None:
    up = (await engine.instant("sort(m)", 0)).to_prometheus()["result"]
    down = (await engine.instant("sort_desc(m)", 0)).to_prometheus()["result"]
    assert [i["value"][1] for i in up] == ["1", "3", "8"]
    assert [i["value"][1] for i in down] == ["8", "3", "1"]


async def test_absent(engine: Engine) -> None:
    assert await at(engine, 'absent(nope{a="b", c!="d"})', 0) == {"a=b": 1}
    assert await at(engine, "absent(g)", 45) == {}
    assert await at(engine, "absent(sum(nope))", 0) == {"": 1}


async def test_deriv_and_predict_linear(engine: Engine) -> None:
    # g: 1, 3, 2, 6 at 0, 15, 30, 45 s. Means 22.5 s and 3; covariance sum
    # (-22.5)(-2) + (-7.5)(0) + (7.5)(-1) + (22.5)(3) = 105; variance sum 1125.
    slope = 105 / 1125
    assert await one(engine, "deriv(g[45s])", 45) == pytest.approx(slope, rel=1e-14)
    # the fitted line at 45 s is 3 + slope x 22.5; one minute later add slope x 60
    expected = 3 + slope * 22.5 + slope * 60
    assert await one(engine, "predict_linear(g[45s], 60)", 45) == pytest.approx(expected, rel=1e-14)
    assert await at(engine, "deriv(g[10s])", 45) == {}  # one sample


@pytest.mark.parametrize(
    ("function", "expected"),
    # 1700000000 is Tuesday 2023-11-14 22:13:20 UTC
    [
        ("year", 2023),
        ("month", 11),
        ("day_of_month", 14),
        ("day_of_year", 318),
        ("day_of_week", 2),
        ("days_in_month", 30),
        ("hour", 22),
        ("minute", 13),
    ],
)
async def test_calendar_functions(engine: Engine, function: str, expected: float) -> None:
    assert await at(engine, f"{function}(vector(1700000000))", 0) == {"": expected}
    assert await at(engine, f"{function}()", 1_700_000_000) == {"": expected}
