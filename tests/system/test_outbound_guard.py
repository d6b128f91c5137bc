"""`vigil up` as shipped: the synthetic service and the notifier learn Vigil's own ports
from the environment `vigil up` gives them (VIGIL_PORT, NATS_URL) and refuse checks and
channels aimed at them, or at the cloud metadata address, in every spelling."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from shared.natsserver import EmbeddedNats, free_port
from tests.conftest import TEST_ADMIN_KEY
from tests.system.conftest import WEBHOOK_SECRET, VigilProcess, WebhookReceiver, shut_down
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

REFUSED = "connection refused by the outbound policy: "


def items(body: Any) -> list[dict[str, Any]]:
    return list(body["items"] if isinstance(body, dict) else body)


def config(port: int, nats_port: int, receiver_port: int) -> str:
    aims = {
        "gw-ipv4": f"http://127.0.0.1:{port}/api/monitoring/alerts",
        "gw-any": f"http://0.0.0.0:{port}/api/monitoring/alerts",
        "gw-hex": f"http://0x7f000001:{port}/api/monitoring/alerts",
        "gw-int": f"http://2130706433:{port}/api/monitoring/alerts",
        "gw-ipv6": f"http://[::1]:{port}/api/monitoring/alerts",
        "gw-name": f"http://localhost:{port}/api/monitoring/alerts",
        "nats-ipv4": f"http://127.0.0.1:{nats_port}/",
        "nats-name": f"http://localhost:{nats_port}/",
        "metadata": "http://169.254.169.254/latest/meta-data/",
    }
    checks = "".join(
        f"  - name: {name}\n    url: {url}\n    interval: 1s\n    timeout: 2s\n"
        "    failures_before_alert: 1\n"
        for name, url in aims.items()
    )
    checks += (
        f"  - name: gw-resolve\n    url: http://0x7f000001:{port}/api/monitoring/alerts/x/resolve\n"
        "    method: POST\n    allow_unsafe_method: true\n    interval: 1s\n"
    )
    return (
        "channels:\n"
        f"  - name: ops\n    type: webhook\n    url: http://127.0.0.1:{receiver_port}/hook\n"
        f"    secret: {WEBHOOK_SECRET}\n"
        f"  - name: self\n    type: webhook\n    url: http://[::1]:{port}/api/monitoring/metrics\n"
        f"checks:\n{checks}"
    )


def start(tmp_path: Path, nats: EmbeddedNats, receiver: WebhookReceiver) -> VigilProcess:
    port = free_port()
    path = tmp_path / "vigil.yaml"
    path.write_text(config(port, nats.port, receiver.port))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["NATS_URL"] = nats.url
    env["VIGIL_BOOTSTRAP_ADMIN_KEY"] = TEST_ADMIN_KEY
    argv = [sys.executable, "-m", "services.cli", "up", "--port", str(port), "--no-agent"]
    argv += ["--data-dir", str(tmp_path / "data"), "--config", str(path)]
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    vigil = VigilProcess(process, port, tmp_path / "data")

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            vigil.lines.append(line.rstrip())

    threading.Thread(target=pump, daemon=True).start()
    vigil.wait_for_line("vigil is up", timeout=90)
    return vigil


async def test_checks_and_channels_cannot_reach_vigil_itself(
    tmp_path: Path, nats_server: EmbeddedNats, webhook_receiver: WebhookReceiver
) -> None:
    vigil = start(tmp_path, nats_server, webhook_receiver)
    try:
        async with vigil.client() as client:

            async def every_check_ran() -> dict[str, str] | None:
                response = await client.get("/api/monitoring/synthetic/results?limit=1000")
                latest: dict[str, str] = {}
                for result in items(response.json()):
                    latest.setdefault(result["name"], result["error"])
                return latest if len(latest) == 10 else None

            errors = await eventually(every_check_ran, within_s=60, what="a run of every check")
            for name, error in errors.items():
                assert error.startswith(REFUSED), (name, error)
            assert errors["gw-hex"].endswith("(0x7f000001) is Vigil's own gateway port")
            assert errors["nats-ipv4"] == (
                REFUSED + f"127.0.0.1:{nats_server.port} is Vigil's own NATS port"
            )
            assert errors["metadata"] == REFUSED + "169.254.169.254 is link-local (cloud metadata)"

            # the failing checks page: the real channel gets it, the one aimed at Vigil fails
            await webhook_receiver.wait_for(lambda: webhook_receiver.of_type("AlertFired"), 60)

            async def self_channel_failed() -> list[dict[str, Any]]:
                response = await client.get("/api/monitoring/notifications?channel=self")
                return [n for n in items(response.json()) if n["status"] == "failed"]

            [failed, *_] = await eventually(self_channel_failed, within_s=30, what="self failed")
            assert failed["error"] == (REFUSED + f"[::1]:{vigil.port} is Vigil's own gateway port")
            assert failed["permanent"] is True
    finally:
        shut_down(vigil)
