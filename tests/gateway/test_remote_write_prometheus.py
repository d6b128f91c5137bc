"""A real Prometheus (Debian's package) scrapes a small target and remote-writes what it
scraped to the gateway; the samples come back out of GET /api/monitoring/metrics."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from services.gateway.app import Gateway
from services.metrics.app import build as build_metrics
from shared.natsserver import free_port
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import headers_for
from tests.waiting import eventually

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="no prometheus binary (./test.sh installs Debian's package)"
)

TARGET_TEXT = """\
# HELP shop_orders_total Orders taken.
# TYPE shop_orders_total counter
shop_orders_total{shop="north"} 1027
# HELP shop_queue_depth Orders waiting.
# TYPE shop_queue_depth gauge
shop_queue_depth{shop="north"} 4.5
"""


@pytest.fixture
async def target() -> AsyncIterator[str]:
    """A scrape target speaking the Prometheus text format."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=TARGET_TEXT, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"127.0.0.1:{port}"
    await runner.cleanup()


@contextlib.asynccontextmanager
async def prometheus(config: dict[str, Any], workdir: Path) -> AsyncIterator[Path]:
    assert PROMETHEUS is not None
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            PROMETHEUS,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{free_port()}",
            stdout=out,
            stderr=out,
        )
        try:
            yield log
        finally:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_prometheus_remote_writes_what_it_scrapes(
    gateway: Gateway,
    gateway_settings: Settings,
    start_service: RuntimeFactory,
    target: str,
    tmp_path: Path,
) -> None:
    await start_service(build_metrics(gateway_settings))
    await eventually(lambda: gateway.http.started)
    base = f"http://127.0.0.1:{gateway_settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
        ingest = await headers_for(gateway.app, http, "ingest")
        viewer = await headers_for(gateway.app, http, "viewer")
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": "shop", "static_configs": [{"targets": [target]}]}],
            "remote_write": [
                {
                    "url": f"{base}/api/v1/write",
                    "authorization": {
                        "credentials": ingest["Authorization"].removeprefix("Bearer ")
                    },
                    "queue_config": {"batch_send_deadline": "1s", "min_backoff": "100ms"},
                    "metadata_config": {"send": False},
                }
            ],
        }
        async with prometheus(config, tmp_path) as log:

            async def arrived(name: str) -> list[dict[str, Any]]:
                response = await http.get(
                    "/api/monitoring/metrics", params={"name": name}, headers=viewer
                )
                assert response.status_code == 200, response.text
                samples: list[dict[str, Any]] = response.json()["samples"]
                return samples

            try:
                orders = await eventually(
                    lambda: arrived("shop_orders_total"), within_s=30, what="remote write"
                )
                depth = await eventually(lambda: arrived("shop_queue_depth"), within_s=10)
                up = await eventually(lambda: arrived("up"), within_s=10)
            except AssertionError:
                print(log.read_text()[-4000:])
                raise
    expected = {"shop": "north", "job": "shop", "instance": target}
    assert orders[0]["value"] == 1027
    assert orders[0]["labels"] == expected
    assert depth[0]["value"] == 4.5
    assert depth[0]["labels"] == expected
    assert up[0]["value"] == 1
    assert up[0]["labels"] == {"job": "shop", "instance": target}
