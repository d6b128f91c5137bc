"""Aggregates for the dashboard: raw and rollup answers agree, quantiles within 1%."""

from __future__ import annotations

import math
import random

import pytest

from services.metrics import sketch
from services.metrics.store import MetricsStore
from shared.errors import InvalidInput
from shared.events import Sample
from tests.metrics.conftest import batch

H0 = 1_699_999_200.0  # a whole hour
HOUR = 3600.0


def gauge(host: str, dc: str, hours: int, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    return [
        Sample(
            name="latency_ms",
            value=round(rng.lognormvariate(3, 0.8), 2),
            timestamp=H0 + n * 10,
            labels={"host": host, "dc": dc},
        )
        for n in range(hours * 360)
    ]


async def filled(store: MetricsStore, compacted: bool) -> dict[str, list[Sample]]:
    hosts = {"a": gauge("a", "x", 3, 1), "b": gauge("b", "x", 3, 2), "c": gauge("c", "y", 3, 3)}
    for seq, samples in enumerate(hosts.values(), start=1):
        await store.store(seq, [batch(samples)])
    if compacted:
        assert await store.compact(H0 + 4 * HOUR) == 3 * 3 * 360
    return hosts


def expected(values: list[float], aggregation: str) -> float:
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "max": ordered[-1],
        "sum": sum(values),
        "count": float(len(values)),
        "avg": sum(values) / len(values),
        "last": values[-1],
    }[aggregation]


@pytest.mark.parametrize("compacted", [False, True], ids=["hot", "compacted"])
@pytest.mark.parametrize("aggregation", ["min", "max", "sum", "count", "avg", "last"])
async def test_exact_aggregates_by_label_from_raw_and_from_rollups(
    store: MetricsStore, compacted: bool, aggregation: str
) -> None:
    hosts = await filled(store, compacted)
    result = await store.aggregate(
        "latency_ms", {}, H0, H0 + 3 * HOUR - 1, 900, aggregation, ["dc"], now_s=H0 + 4 * HOUR
    )
    assert [group["labels"] for group in result] == [{"dc": "x"}, {"dc": "y"}]
    for group in result:
        members = [h for h, s in hosts.items() if s[0]["labels"]["dc"] == group["labels"]["dc"]]
        assert len(group["points"]) == 12
        for ts, value in group["points"]:
            window = [s for h in members for s in hosts[h] if ts <= s["timestamp"] < ts + 900]
            window.sort(key=lambda s: s["timestamp"] or 0.0)
            if aggregation == "last":  # series tie on the newest timestamp: any of theirs
                newest = window[-1]["timestamp"]
                assert value in {s["value"] for s in window if s["timestamp"] == newest}
                continue
            assert value == pytest.approx(
                expected([s["value"] for s in window], aggregation), rel=1e-9
            )


@pytest.mark.parametrize("compacted", [False, True], ids=["hot", "compacted"])
@pytest.mark.parametrize(("aggregation", "q"), [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)])
async def test_quantiles_are_within_the_sketch_accuracy(
    store: MetricsStore, compacted: bool, aggregation: str, q: float
) -> None:
    hosts = await filled(store, compacted)
    result = await store.aggregate(
        "latency_ms", {"dc": "x"}, H0, H0 + 3 * HOUR - 1, HOUR, aggregation, [], H0 + 5 * HOUR
    )
    assert len(result) == 1
    assert len(result[0]["points"]) == 3
    for ts, value in result[0]["points"]:
        values = sorted(
            s["value"] for h in ("a", "b") for s in hosts[h] if ts <= s["timestamp"] < ts + HOUR
        )
        rank = q * (len(values) - 1)
        true = values[math.floor(rank)]
        assert abs(value - true) <= 2 * sketch.RELATIVE_ACCURACY * abs(true) + 1e-9


async def test_unknown_series_give_nothing_and_bad_arguments_name_their_field(
    store: MetricsStore,
) -> None:
    assert await store.aggregate("nothing", {}, H0, H0 + 60, 60, "avg") == []
    for kwargs, field in (
        ({"aggregation": "median"}, "aggregation"),
        ({"step_s": 0}, "step"),
        ({"end_s": H0 - 1}, "end"),
    ):
        arguments = {"start_s": H0, "end_s": H0 + 60, "step_s": 60, "aggregation": "avg"}
        arguments.update(kwargs)
        with pytest.raises(InvalidInput) as error:
            await store.aggregate("cpu", {}, **arguments)  # type: ignore[arg-type]
        assert error.value.field == field


def test_sketch_keys_keep_the_order_of_values_and_the_relative_error() -> None:
    values = [-1e300, -5.5, -1e-200, 0.0, 1e-200, 0.001, 1.0, 42.7, 1e308]
    keys = [sketch.key_of(v) for v in values]
    assert keys == sorted(keys)  # type: ignore[type-var]
    for value, key in zip(values, keys, strict=True):
        assert key is not None
        assert abs(sketch.value_of(key) - value) <= sketch.RELATIVE_ACCURACY * abs(value)
    assert sketch.key_of(math.nan) is None
