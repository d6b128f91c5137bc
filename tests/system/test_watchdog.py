"""The dead-man's switch and Vigil's own alerts, on the whole system as a user starts it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from aiohttp import web

from shared.natsserver import free_port
from tests.system.conftest import VigilProcess, WebhookReceiver, shut_down, start_vigil
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

FAST_HEALTH = {
    "VIGIL_WATCHDOG_INTERVAL_S": "0.3",
    "VIGIL_HEARTBEAT_INTERVAL_S": "0.5",
    "VIGIL_STALL_AFTER_S": "2",
}


@dataclass
class PingReceiver:
    """A dead-man's switch service (healthchecks.io style): it only counts pings."""

    port: int = field(default_factory=free_port)
    pings: list[float] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.pings.append(time.monotonic())
        return web.Response(text="OK")

    def since(self, moment: float) -> int:
        return sum(1 for t in self.pings if t > moment)


@pytest.fixture
async def ping_receiver() -> AsyncIterator[PingReceiver]:
    receiver = PingReceiver()
    app = web.Application()
    app.router.add_post("/ping/abc", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
    yield receiver
    await runner.cleanup()


@pytest.fixture
def watched_vigil(
    tmp_path: Path, webhook_receiver: WebhookReceiver, ping_receiver: PingReceiver
) -> Iterator[VigilProcess]:
    deadman = f"deadman:\n  url: http://127.0.0.1:{ping_receiver.port}/ping/abc\n  interval: 1s\n"
    vigil = start_vigil(tmp_path, webhook_receiver, FAST_HEALTH, deadman)
    try:
        yield vigil
    finally:
        for proc in vigil.tree():  # never leave a paused process behind
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGCONT)
        shut_down(vigil)


async def pings_flow(receiver: PingReceiver, within_s: float = 20.0) -> None:
    start = time.monotonic()
    await eventually(lambda: receiver.since(start) >= 2, within_s=within_s, what="pings")


async def test_the_switch_is_pinged_only_while_every_stage_of_the_path_works(
    watched_vigil: VigilProcess, ping_receiver: PingReceiver
) -> None:
    await pings_flow(ping_receiver)
    async with watched_vigil.client() as http:
        for stage in ("alerts", "notifier"):
            pid = watched_vigil.service_pid(stage)
            os.kill(pid, signal.SIGSTOP)  # hung, not dead: the supervisor does not see it
            try:
                await asyncio.sleep(1.5)  # what was already on its way
                quiet_from = time.monotonic()
                await asyncio.sleep(3.0)
                assert ping_receiver.since(quiet_from) == 0, f"pinged while {stage} hung"

                async def reported(name: str = stage) -> bool:
                    body = (await http.get("/health")).json()
                    return body["status"] == "failing" and any(
                        name in p["reason"] for p in body["problems"]
                    )

                await eventually(reported, within_s=10, what=f"{stage} reported")
            finally:
                os.kill(pid, signal.SIGCONT)
            await pings_flow(ping_receiver)


async def test_a_failing_channel_raises_an_alert_through_the_others(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    closed = free_port()
    broken = (
        "  - name: broken-hook\n    type: webhook\n"
        f"    url: http://127.0.0.1:{closed}/hook\n    timeout: 1s\n"
    )
    vigil = start_vigil(tmp_path, webhook_receiver, FAST_HEALTH, broken)
    try:
        async with vigil.client() as http:
            sample = [{"name": "checkout_latency_ms", "value": 5000}]
            assert (await http.post("/api/monitoring/metrics", json=sample)).status_code == 202

            def channel_alert() -> bool:
                return any(
                    p.get("alert", {}).get("rule") == "VigilChannelFailing"
                    and p["alert"]["labels"] == {"channel": "broken-hook"}
                    for p in webhook_receiver.of_type("AlertFired")
                )

            await webhook_receiver.wait_for(channel_alert, timeout=30)
            health = (await http.get("/health")).json()
            assert health["status"] == "degraded"
            assert any(p["component"] == "channel:broken-hook" for p in health["problems"])
    finally:
        shut_down(vigil)
