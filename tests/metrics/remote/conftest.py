"""A real Prometheus-compatible store for the remote tests: Debian's ``victoria-metrics``
on a free port with its own data dir, stopped and started again at will.

Without the binary the tests are skipped, unless ``VIGIL_REQUIRE_PEERS=1`` (CI) makes
that a failure: ``./test.sh`` installs the package.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from shared.natsserver import free_port
from tests.waiting import eventually

VICTORIA_METRICS = shutil.which("victoria-metrics") or shutil.which("victoria-metrics-prod")
PEERS_REQUIRED = os.environ.get("VIGIL_REQUIRE_PEERS") == "1"


class VictoriaMetrics:
    """One store process; ``stop`` and ``start`` keep its port and data."""

    def __init__(self, binary: str, workdir: Path):
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.write_url = f"{self.url}/api/v1/write"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = (self.workdir / "victoria-metrics.log").open("ab")
        self.process = await asyncio.create_subprocess_exec(
            self.binary,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.workdir / 'data'}",
            "-retentionPeriod=10y",
            "-search.latencyOffset=0s",  # samples are searchable at once
            "-search.disableCache",
            "-loggerLevel=WARN",
            stdout=log,
            stderr=log,
        )
        log.close()
        await eventually(self.healthy, within_s=30, what="victoria-metrics to answer")

    async def healthy(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=1.0) as http:
                return (await http.get(f"{self.url}/health")).status_code == 200
        except httpx.HTTPError:
            return False

    async def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 20)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        self.process = None

    async def export(self, match: str) -> list[dict[str, Any]]:
        """Every stored sample of the matching series as stored (duplicates included)."""
        async with httpx.AsyncClient(timeout=10.0) as http:
            await http.get(f"{self.url}/internal/force_flush")
            response = await http.get(f"{self.url}/api/v1/export", params={"match[]": match})
        assert response.status_code == 200, response.text
        return [orjson.loads(line) for line in response.content.splitlines() if line.strip()]

    async def samples(self, match: str) -> set[tuple[tuple[tuple[str, str], ...], int, float]]:
        """The stored samples as a set, after checking that none is stored twice."""
        found: list[tuple[tuple[tuple[str, str], ...], int, float]] = []
        for series in await self.export(match):
            labels = tuple(sorted(series["metric"].items()))
            found.extend(
                (labels, ts, float(v))
                for ts, v in zip(series["timestamps"], series["values"], strict=True)
            )
        assert len(found) == len(set(found)), "a sample is stored twice"
        return set(found)


@pytest.fixture
async def victoria(tmp_path: Path) -> AsyncIterator[VictoriaMetrics]:
    if VICTORIA_METRICS is None:
        if PEERS_REQUIRED:
            pytest.fail("victoria-metrics is required (VIGIL_REQUIRE_PEERS=1) but not installed")
        pytest.skip("no victoria-metrics binary (./test.sh installs Debian's package)")
    store = VictoriaMetrics(VICTORIA_METRICS, tmp_path / "vm")
    store.workdir.mkdir()
    await store.start()
    yield store
    await store.stop()
