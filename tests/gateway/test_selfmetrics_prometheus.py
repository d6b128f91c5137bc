"""Prometheus itself (Debian's ``prometheus``) scrapes every Vigil service through the
gateway with a viewer key, as docs/operations.md tells an operator to; ``promtool``
accepts every exposition."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.gateway.app import Gateway
from shared.natsserver import free_port
from shared.runtime import ServiceRuntime
from shared.services import SERVICES
from tests.gateway.identities import headers_for
from tests.gateway.test_selfmetrics_api import owners, served, viewer  # noqa: F401
from tests.waiting import eventually

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


def path_of(service: str) -> str:
    return "/metrics" if service == "gateway" else f"/metrics/{service}"


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")
async def test_promtool_accepts_every_service_exposition(
    served: httpx.AsyncClient,  # noqa: F811
    owners: dict[str, ServiceRuntime],  # noqa: F811
    viewer: dict[str, str],  # noqa: F811
) -> None:
    assert PROMTOOL is not None
    for service in SERVICES:
        text = (await served.get(path_of(service), headers=viewer)).text
        checking = await asyncio.create_subprocess_exec(
            PROMTOOL,
            "check",
            "metrics",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        said, _ = await checking.communicate(text.encode())
        assert checking.returncode == 0, (service, said.decode())


def scrape_config(port: int, key_file: Path) -> str:
    targets = "\n".join(
        f'      - targets: ["127.0.0.1:{port}"]\n        labels: {{service: {s}}}' for s in SERVICES
    )
    return f"""global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: vigil
    authorization:
      type: Bearer
      credentials_file: {key_file}
    static_configs:
{targets}
    relabel_configs:
      - source_labels: [service]
        target_label: __metrics_path__
        regex: gateway
        replacement: /metrics
      - source_labels: [service]
        target_label: __metrics_path__
        regex: "(metrics|alerts|incidents|synthetic|notifier)"
        replacement: /metrics/$1
"""


@pytest.fixture
async def prometheus(
    gateway: Gateway, client: httpx.AsyncClient, tmp_path: Path
) -> AsyncIterator[str]:
    assert PROMETHEUS is not None
    key = await headers_for(gateway.app, client, "viewer")
    key_file = tmp_path / "vigil-key"
    key_file.write_text(key["Authorization"].removeprefix("Bearer "))
    config = tmp_path / "prometheus.yml"
    config.write_text(scrape_config(gateway.runtime.settings.port, key_file))
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed")
async def test_prometheus_scrapes_every_service_and_sees_one_stop(
    prometheus: str,
    owners: dict[str, ServiceRuntime],  # noqa: F811
) -> None:
    async with httpx.AsyncClient(base_url=prometheus, timeout=5.0) as http:

        async def up() -> dict[str, float]:
            try:
                found = await http.get("/api/v1/query", params={"query": "up"})
            except httpx.HTTPError:
                return {}
            result: list[dict[str, Any]] = found.json()["data"]["result"]
            return {r["metric"]["service"]: float(r["value"][1]) for r in result}

        async def all_up() -> bool:
            return await up() == dict.fromkeys(SERVICES, 1.0)

        await eventually(all_up, within_s=30, what="every service up in Prometheus")
        handled = await http.get(
            "/api/v1/query",
            params={"query": 'vigil_service_info{job="vigil"}'},
        )
        # the service that answered (exported_service) is the one its path names
        answered = {
            r["metric"]["service"]: r["metric"]["exported_service"]
            for r in handled.json()["data"]["result"]
        }
        assert answered == {s: s for s in SERVICES}

        await owners["incidents"].stop()

        async def incidents_down() -> bool:
            return (await up()).get("incidents") == 0.0

        await eventually(incidents_down, within_s=30, what="incidents down in Prometheus")
