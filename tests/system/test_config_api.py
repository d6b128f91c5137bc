"""The whole system (``vigil up``): a rule and a channel made through the API page on the
next crossing sample, signed with a secret that no file and no log holds in clear; the
configuration exports as a file ``vigil check-config`` accepts."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

from services.notifier.channels.webhook import verify
from shared.natsserver import free_port
from tests.system.conftest import WebhookReceiver, shut_down, start_vigil

# the identity section authenticates the bootstrap admin key; without it nothing is served
pytest.importorskip("services.gateway.identity")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ADMIN_KEY = "config-api-admin-key-0123456789abcdef"
CLEAR = "api-channel-secret-in-clear-4711"


def vigil_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_api_rule_pages_through_api_channel_and_the_secret_is_never_in_clear(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    pages: list[tuple[dict[str, str], bytes]] = []
    paged = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        pages.append((dict(request.headers), await request.read()))
        paged.set()
        return web.Response(status=204)

    port = free_port()
    app = web.Application()
    app.router.add_post("/pager", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    vigil = start_vigil(tmp_path, webhook_receiver, {"VIGIL_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY})
    try:
        async with vigil.client() as client:
            client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
            channel = {
                "name": "pager",
                "type": "webhook",
                "url": f"http://127.0.0.1:{port}/pager",
                "secret": CLEAR,
                "events": ["AlertFired"],
            }
            made = await client.post("/api/monitoring/channels", json=channel)
            assert made.status_code == 201, made.text
            rule = {"name": "OrdersFailing", "metric": "orders_failed", "critical": 5}
            made = await client.post("/api/monitoring/alerts/rules", json=rule)
            assert made.status_code == 201, made.text
            sent = await client.post(
                "/api/monitoring/metrics", json=[{"name": "orders_failed", "value": 9}]
            )
            assert sent.status_code == 202, sent.text
            await asyncio.wait_for(paged.wait(), 20)
        headers, body = pages[0]
        assert b"OrdersFailing" in body
        assert verify(CLEAR, headers["X-Vigil-Signature-256"], body)

        nats_url = next(
            m.group(1)
            for line in vigil.lines
            if (m := re.search(r"vigil nats \w+ \((\S+)\)", line))
        )
        output = tmp_path / "exported.yaml"
        exported = await asyncio.to_thread(
            vigil_cli,
            ["config", "export", "--config", str(tmp_path / "vigil.yaml"), "-o", str(output)],
            {"NATS_URL": nats_url, "VIGIL_DATA_DIR": str(vigil.data_dir)},
        )
        assert exported.returncode == 0, exported.stderr
        text = output.read_text()
        assert "OrdersFailing" in text and "pager" in text and CLEAR not in text
        checked = await asyncio.to_thread(vigil_cli, ["check-config", str(output)], {})
        assert checked.returncode == 0, checked.stderr
    finally:
        shut_down(vigil)
        await runner.cleanup()
    # after the run: the data dir (event log, read models, ledgers, logs) and everything
    # the processes printed hold the secret only encrypted
    assert not any(CLEAR in line for line in vigil.lines)
    holding = [
        p for p in vigil.data_dir.rglob("*") if p.is_file() and CLEAR.encode() in p.read_bytes()
    ]
    assert holding == []
