"""Query timing and cache counting, as Vigil receives them."""

from __future__ import annotations

import asyncio
import time

import pytest
from vigil_client import VigilClient, cache_hit, cache_miss, db_query
from vigil_client.labels import OVERFLOW

from tests.client.conftest import INGEST_KEY, IngestReceiver


def test_query_times_errors_and_cache_hit_rate(receiver: IngestReceiver) -> None:
    client = VigilClient(receiver.url, INGEST_KEY, start=False, max_names=3)

    @db_query("load_user", client)
    def load_user() -> str:
        time.sleep(0.05)
        return "ann"

    @db_query("load_orders", client)
    async def load_orders() -> list[int]:
        await asyncio.sleep(0.02)
        return [1]

    assert load_user() == "ann"
    assert asyncio.run(load_orders()) == [1]
    with pytest.raises(LookupError), client.db_query("load_user"):
        raise LookupError("gone")
    for _ in range(3):
        cache_hit("users", client)
    cache_miss("users", client)
    for name in ("a", "b", "c"):
        cache_miss(name, client)
    client.close()

    assert receiver.refused == []
    assert receiver.latest("app_db_queries_total", query="load_user") == 2
    assert receiver.latest("app_db_query_errors_total", query="load_user") == 1
    assert receiver.latest("app_db_query_errors_total", query="load_orders") == 0
    assert 40 <= receiver.latest("app_db_query_time_ms", query="load_user") < 1000
    assert 15 <= receiver.latest("app_db_query_time_ms", query="load_orders") < 1000
    assert receiver.latest("app_cache_hits_total", cache="users") == 3
    assert receiver.latest("app_cache_misses_total", cache="users") == 1
    assert receiver.latest("app_cache_hit_rate_percent", cache="users") == 75
    # cache names are bounded too: the fourth name is counted as overflow
    assert receiver.latest("app_cache_misses_total", cache=OVERFLOW) == 1
    assert receiver.value("app_cache_misses_total", cache="c") is None


async def test_async_with_times_the_block(receiver: IngestReceiver) -> None:
    client = VigilClient(receiver.url, INGEST_KEY, start=False)
    async with db_query("report", client):
        await asyncio.sleep(0.02)
    await asyncio.to_thread(client.close)
    assert receiver.latest("app_db_queries_total", query="report") == 1


def test_helpers_without_a_configured_client_do_nothing() -> None:
    with db_query("orphan"):
        pass
    cache_hit("orphan")
    cache_miss("orphan")
