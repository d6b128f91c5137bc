"""The forwarder against Prometheus' own remote-write receiver (Debian's ``prometheus``
with ``--web.enable-remote-write-receiver``): samples are stored exactly as published;
samples older than its head accepts are refused with 400, dropped and counted, and the
forwarder goes on; its PromQL errors come back as Prometheus names them."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.metrics.remote.forward import FORWARD_CONSUMER
from services.metrics.remote.query import RemoteQueryClient, RemoteQueryError
from shared.bus import EventBus
from shared.natsserver import free_port
from shared.settings import Settings
from shared.streams import METRICS
from tests.conftest import RuntimeFactory
from tests.metrics.remote.conftest import PEERS_REQUIRED
from tests.metrics.remote.test_forward import (
    StoredSample,
    expected,
    forwarding_to,
    publish,
    samples_of,
    start_forwarder,
)
from tests.waiting import caught_up, eventually

PROMETHEUS = shutil.which("prometheus")


@dataclass
class Prometheus:
    url: str

    async def samples(self, name: str) -> set[StoredSample]:
        """Every stored sample of ``name``'s series over the last day, none twice."""
        async with httpx.AsyncClient(timeout=10.0) as http:
            response = await http.get(
                f"{self.url}/api/v1/query", params={"query": f"{name}[1d]", "time": time.time()}
            )
        assert response.status_code == 200, response.text
        found: list[StoredSample] = []
        for series in response.json()["data"]["result"]:
            labels = tuple(sorted(series["metric"].items()))
            found.extend((labels, round(ts * 1000), float(v)) for ts, v in series["values"])
        assert len(found) == len(set(found)), "a sample is stored twice"
        return set(found)


@pytest.fixture
async def prometheus(tmp_path: Path) -> AsyncIterator[Prometheus]:
    if PROMETHEUS is None:
        if PEERS_REQUIRED:
            pytest.fail("prometheus is required (VIGIL_REQUIRE_PEERS=1) but not installed")
        pytest.skip("no prometheus binary (./test.sh installs Debian's package)")
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\n")
    port = free_port()
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-remote-write-receiver",
            stdout=log,
            stderr=log,
        )
    store = Prometheus(f"http://127.0.0.1:{port}")

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(timeout=1.0) as http:
                return (await http.get(f"{store.url}/-/ready")).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        await eventually(ready, within_s=30, what="prometheus to be ready")
        yield store
    finally:
        process.terminate()
        await process.wait()


async def test_prometheus_stores_what_is_forwarded_and_refuses_the_too_old(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory, prometheus: Prometheus
) -> None:
    start = time.time() - 300
    first = await publish(bus, samples_of("fwd_prom", 20, 30, start), time.time())
    _, forwarder = await start_forwarder(
        forwarding_to(settings, f"{prometheus.url}/api/v1/write"), start_service
    )
    await caught_up(bus, FORWARD_CONSUMER.durable, METRICS.name)
    assert await prometheus.samples("fwd_prom") == expected([first])

    # far older than the head's appendable window: Prometheus answers 400
    await publish(bus, samples_of("fwd_prom_old", 2, 3, start - 6 * 3600), time.time())
    await caught_up(bus, FORWARD_CONSUMER.durable, METRICS.name)
    assert forwarder.dropped == 6
    assert (forwarder.status()["remote_write"]["last_drop"] or "").startswith("HTTP 400")
    later = await publish(bus, samples_of("fwd_prom", 20, 2, start + 30), time.time())
    await caught_up(bus, FORWARD_CONSUMER.durable, METRICS.name)
    assert await prometheus.samples("fwd_prom") == expected([first, later])
    assert await prometheus.samples("fwd_prom_old") == set()

    async with RemoteQueryClient(prometheus.url) as remote:
        body = await remote.query({"query": "count(fwd_prom)", "time": str(start + 31)})
        assert body["data"]["result"][0]["value"][1] == "20"
        with pytest.raises(RemoteQueryError) as caught:
            await remote.query({"query": "sum(("})
    assert (caught.value.error_type, caught.value.status) == ("bad_data", 400)
