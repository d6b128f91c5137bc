"""A check that keeps failing pages through the same rules and channels as any metric."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from shared.natsserver import free_port
from tests.system.conftest import WebhookReceiver, shut_down, start_vigil

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_failing_check_fires_then_recovery_resolves(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    healthy = False

    async def homepage(request: web.Request) -> web.Response:
        return web.Response(status=200 if healthy else 503, text="checkout")

    app = web.Application()
    app.router.add_get("/", homepage)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    checks = f"""
checks:
  - name: homepage
    url: http://127.0.0.1:{port}/
    interval: 0.5s
    timeout: 2s
    failures_before_alert: 2
"""
    vigil = start_vigil(tmp_path, webhook_receiver, {}, checks)
    try:
        await webhook_receiver.wait_for(lambda: webhook_receiver.of_type("AlertFired"), 30)
        fired = webhook_receiver.of_type("AlertFired")[0]["alert"]
        assert (fired["rule"], fired["severity"]) == ("SyntheticCheckDown", "critical")
        assert fired["labels"] == {"check": "homepage"}
        await webhook_receiver.wait_for(lambda: webhook_receiver.of_type("IncidentOpened"), 30)

        healthy = True
        await webhook_receiver.wait_for(lambda: webhook_receiver.of_type("AlertResolved"), 30)
        async with vigil.client() as client:
            results = (await client.get("/api/monitoring/synthetic/results")).json()["items"]
        assert any(r["ok"] is False for r in results) and any(r["ok"] is True for r in results)
    finally:
        shut_down(vigil)
        await runner.cleanup()
