"""The host agent: what it measures, and that it delivers over HTTP or NATS despite failures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import psutil
import pytest
from aiohttp import web

from services.gateway.metrics.batch import parse_sample_batch
from services.metrics.agent import (
    Backoff,
    GatewaySink,
    HostCollector,
    host_batch,
    run_agent,
    send_pending,
)
from shared import subjects
from shared.bus import EventBus
from shared.events import SamplesIngested
from shared.natsserver import free_port
from tests.waiting import eventually

HOST = socket.gethostname()


@dataclass
class GatewayStub:
    """A real HTTP server standing in for the gateway's POST /api/monitoring/metrics."""

    url: str = ""
    answers: deque[int] = field(default_factory=deque)  # statuses to give before 202s
    received: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    attempts: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        status = self.answers.popleft() if self.answers else 202
        if status == 202:
            body = orjson.loads(await request.read())
            self.received.append((request.headers["Idempotency-Key"], body))
        return web.json_response({"status": status}, status=status)


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayStub]:
    stub = GatewayStub()
    app = web.Application()
    app.router.add_post("/api/monitoring/metrics", stub.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stub.url = f"http://127.0.0.1:{port}"
    yield stub
    await runner.cleanup()


def test_collection_covers_the_host_with_host_labels() -> None:
    collector = HostCollector()
    burn_until = time.monotonic() + 0.3  # some CPU and some time for the rate windows
    while time.monotonic() < burn_until:
        sum(range(1000))
    samples = collector.collect()
    names = {s["name"] for s in samples}
    expected = {
        "system_cpu_percent",
        "system_cpu_core_percent",
        "system_memory_percent",
        "system_memory_used_bytes",
        "system_swap_percent",
        "system_load1",
        "system_load5",
        "system_load15",
        "system_process_count",
        "system_uptime_s",
        "system_process_cpu_percent",
        "system_process_memory_bytes",
        "system_net_recv_bytes_per_s",
        "system_net_sent_bytes_per_s",
    }
    assert expected <= names
    assert all(s["labels"]["host"] == HOST for s in samples)
    cores = [s for s in samples if s["name"] == "system_cpu_core_percent"]
    assert sorted(s["labels"]["core"] for s in cores) == sorted(str(n) for n in range(len(cores)))
    assert len(cores) == psutil.cpu_count()
    by_memory = [s for s in samples if s["name"] == "system_process_memory_bytes"]
    by_cpu = [s for s in samples if s["name"] == "system_process_cpu_percent"]
    assert len(by_memory) == 5
    assert 1 <= len(by_cpu) <= 5
    assert [s["value"] for s in by_memory] == sorted((s["value"] for s in by_memory), reverse=True)
    assert [s["value"] for s in by_cpu] == sorted((s["value"] for s in by_cpu), reverse=True)
    count = next(s for s in samples if s["name"] == "system_process_count")
    assert count["value"] == pytest.approx(len(psutil.pids()), abs=50)
    uptime = next(s for s in samples if s["name"] == "system_uptime_s")
    assert uptime["value"] == pytest.approx(time.time() - psutil.boot_time(), abs=5)


def test_what_the_agent_collects_passes_the_gateways_validation() -> None:
    samples = HostCollector().collect()
    assert parse_sample_batch(orjson.dumps(samples)) == samples


def test_process_cpu_is_measured_since_the_previous_pass() -> None:
    collector = HostCollector()
    busy_until = time.monotonic() + 0.4
    while time.monotonic() < busy_until:
        sum(range(1000))
    busy = {p.pid: p for p in collector.processes()}[os.getpid()]
    assert busy.cpu_percent is not None
    assert busy.cpu_percent > 10.0
    assert {p.pid: p for p in collector.processes()}[os.getpid()].cpu_percent is None  # too soon
    time.sleep(0.3)
    idle = {p.pid: p for p in collector.processes()}[os.getpid()]
    assert idle.cpu_percent is not None
    assert idle.cpu_percent < busy.cpu_percent


def test_one_collection_costs_well_under_the_cpu_budget() -> None:
    """0.5 % of a core at a 10 s interval is 50 ms of CPU per collection."""
    collector = HostCollector()
    started = time.process_time()
    for _ in range(5):
        collector.collect()
    assert (time.process_time() - started) / 5 < 0.05


async def test_once_posts_one_batch_to_the_gateway(gateway: GatewayStub) -> None:
    await run_agent(interval_s=0.2, nats_url=None, gateway_url=gateway.url, once=True)
    assert len(gateway.received) == 1
    key, samples = gateway.received[0]
    assert key
    assert {"system_cpu_percent", "system_disk_read_bytes_per_s"} <= {s["name"] for s in samples}
    assert all(s["labels"]["host"] == HOST and "timestamp" in s for s in samples)


async def test_once_publishes_to_nats_on_the_agent_subject(bus: EventBus) -> None:
    nc_url = bus.nc.connected_url
    assert nc_url is not None
    await run_agent(
        interval_s=0.2,
        nats_url=f"nats://{nc_url.hostname}:{nc_url.port}",
        gateway_url=None,
        once=True,
    )
    recorded = [r async for r in bus.replay("METRICS")]
    assert len(recorded) == 1
    assert recorded[0].subject == subjects.samples(f"agent-{HOST}")
    event = recorded[0].event
    assert isinstance(event, SamplesIngested)
    assert event.aggregate_id == f"agent-{HOST}"
    assert any(s["name"] == "system_memory_percent" for s in event.samples)


async def test_failed_sends_are_retried_with_the_same_batch_id(gateway: GatewayStub) -> None:
    gateway.answers.extend([503, 429])
    sink = GatewaySink(gateway.url)
    first, second = host_batch(HOST, []), host_batch(HOST, [])
    pending = deque([first, second])
    backoff = Backoff(delays_s=(0.01, 0.02))
    assert await send_pending(sink, pending, backoff) == 0.01
    assert await send_pending(sink, pending, backoff) == 0.02
    assert await send_pending(sink, pending, backoff) == 0.0
    assert [key for key, _ in gateway.received] == [first.id, second.id]
    assert gateway.attempts == 4
    assert backoff.failures == 0


async def test_an_unreachable_gateway_is_a_transient_failure() -> None:
    sink = GatewaySink(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    pending = deque([host_batch(HOST, [])])
    assert await send_pending(sink, pending, Backoff(delays_s=(0.01,))) == 0.01
    assert len(pending) == 1


async def test_a_rejected_batch_is_dropped_and_the_next_one_sent(gateway: GatewayStub) -> None:
    gateway.answers.append(422)
    sink = GatewaySink(gateway.url)
    rejected, accepted = host_batch(HOST, []), host_batch(HOST, [])
    pending = deque([rejected, accepted])
    assert await send_pending(sink, pending, Backoff()) == 0.0
    assert [key for key, _ in gateway.received] == [accepted.id]
    assert not pending


async def test_the_agent_keeps_running_while_the_gateway_is_away(gateway: GatewayStub) -> None:
    gateway.answers.extend([500, 500])
    agent = asyncio.create_task(run_agent(0.2, None, gateway.url))
    try:

        async def delivered_three() -> bool:
            assert not agent.done(), agent
            return len(gateway.received) >= 3

        await eventually(delivered_three, within_s=15, what="three batches after two failures")
        assert len({key for key, _ in gateway.received}) == len(gateway.received)
    finally:
        agent.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await agent


async def test_the_agent_process_stays_under_40_mb(gateway: GatewayStub) -> None:
    code = (
        "import asyncio, sys\n"
        "from services.metrics.agent import run_agent\n"
        "asyncio.run(run_agent(0.2, None, sys.argv[1]))\n"
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", code, gateway.url)
    try:

        async def sent_twice() -> bool:
            return len(gateway.received) >= 2

        await eventually(sent_twice, within_s=20, what="the agent to send twice")
        rss = psutil.Process(process.pid).memory_info().rss
        assert rss < 40 * 1024 * 1024, f"agent RSS {rss / 2**20:.1f} MB"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 5)
