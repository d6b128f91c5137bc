"""The metrics service's PromQL responders on the real DuckDB store and engine: selectors
of match[] as Prometheus reads them, limits, and answers too large for one reply refused
whole with an error that says how to narrow them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from services.metrics.promql import Engine
from services.metrics.query_api import PromQueries
from services.metrics.series_source import DuckSeriesSource
from services.metrics.settings import MetricsSettings
from services.metrics.store import MetricsStore
from shared.errors import InvalidInput
from shared.events import Sample
from tests.metrics.conftest import batch

NOW_S = float(int(time.time()) - 600)
HOSTS = ("a", "b", "c")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MetricsStore]:
    opened = MetricsStore(tmp_path / "metrics.duckdb", MetricsSettings(), 15 * 86_400)
    await opened.open()
    samples = [
        Sample(name="load", value=float(n), timestamp=NOW_S + 10 * n, labels={"host": host})
        for host in HOSTS
        for n in range(30)
    ]
    samples.append(Sample(name="up", value=1.0, timestamp=NOW_S, labels={"job": "api"}))
    await opened.store(1, [batch(samples)])
    yield opened
    await opened.close()


def queries(store: MetricsStore, max_reply_bytes: int = 8_000_000) -> PromQueries:
    source = DuckSeriesSource(store)
    return PromQueries(Engine(source), source, store, max_reply_bytes=max_reply_bytes)


WINDOW = {"start_ms": int(NOW_S * 1000) - 60_000, "end_ms": int(NOW_S * 1000) + 600_000}


async def test_a_selector_with_or_matches_either_side(store: MetricsStore) -> None:
    answer = await queries(store).series({"match": ['{host="a" or job="api"}'], **WINDOW})
    assert answer == {
        "status": "success",
        "data": [{"__name__": "load", "host": "a"}, {"__name__": "up", "job": "api"}],
    }


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ('{__name__!=""}', ["load", "up"]),
        ('{__name__=~".+"}', ["load", "up"]),
        ('{host!~""}', ["load"]),
    ],
)
async def test_a_selector_that_cannot_match_an_empty_value_is_accepted(
    store: MetricsStore, selector: str, names: list[str]
) -> None:
    query = {"name": "__name__", "match": [selector], **WINDOW}
    assert await queries(store).label_values(query) == {"status": "success", "data": names}


async def test_several_selectors_are_a_union_without_duplicates(store: MetricsStore) -> None:
    answer = await queries(store).series({"match": ["load", 'load{host="b"}'], **WINDOW})
    assert [s["host"] for s in answer["data"]] == list(HOSTS)


async def test_limit_truncates_with_a_warning(store: MetricsStore) -> None:
    answer = await queries(store).label_values({"name": "host", "match": [], "limit": 2, **WINDOW})
    assert answer["data"] == ["a", "b"]
    assert answer["warnings"] == ["results truncated due to limit"]
    names = await queries(store).labels({"match": ["up"], **WINDOW})
    assert names == {"status": "success", "data": ["__name__", "job"]}


@pytest.mark.parametrize(
    ("selector", "says"),
    [
        ("rate(load[5m])", "is not a series selector"),
        ('{host=~".*"}', "at least one non-empty matcher"),
        ('{host=""}', "at least one non-empty matcher"),
        ('{host!="a"}', "at least one non-empty matcher"),
        ('{host="a" or job=""}', "at least one non-empty matcher"),
        ("load{", 'invalid parameter "match[]"'),
    ],
)
async def test_a_bad_selector_is_bad_data(store: MetricsStore, selector: str, says: str) -> None:
    answer = await queries(store).series({"match": [selector], **WINDOW})
    assert answer["status"] == "error" and answer["errorType"] == "bad_data"
    assert says in answer["error"]


async def test_a_result_larger_than_a_reply_is_refused_whole(store: MetricsStore) -> None:
    query = {"query": "load", "step_ms": 10_000, **WINDOW}
    # a success is the envelope's JSON, built once and passed on undecoded
    fits = orjson.loads(orjson.dumps(await queries(store).range(query)))
    assert fits["status"] == "success"
    assert len(fits["data"]["result"]) == len(HOSTS)
    small = await queries(store, max_reply_bytes=1000).range(query)
    assert small["status"] == "error" and small["errorType"] == "execution"
    assert "more than the 1,000 one answer may hold" in small["error"]


async def test_engine_errors_keep_their_type(store: MetricsStore) -> None:
    answer = await queries(store).instant({"query": "sum(load", "time_ms": WINDOW["end_ms"]})
    assert answer["status"] == "error" and answer["errorType"] == "bad_data"
    with pytest.raises(InvalidInput, match="time_ms"):  # the gateway answers it bad_data
        await queries(store).instant({"query": "load", "time_ms": "now"})


async def test_chart_aggregates_group_by_labels(store: MetricsStore) -> None:
    start = int(NOW_S) // 60 * 60
    answer = await queries(store).aggregate(
        {
            "name": "load",
            "start": start,
            "end": start + 600,
            "step": 600,
            "aggregation": "count",
            "by": ["host"],
        }
    )
    counts = {s["labels"]["host"]: s["points"] for s in answer["series"]}
    in_window = sum(1 for n in range(30) if start <= NOW_S + 10 * n < start + 600)
    assert counts == {host: [[start, float(in_window)]] for host in HOSTS}
