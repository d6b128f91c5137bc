"""``vigil up --tls-cert F --tls-key F``: the whole system serving HTTPS, its own agent
sending samples over it, and a wrong pair refused before anything starts."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.natsserver import free_port
from tests.gateway.surface_server import self_signed
from tests.system.conftest import VigilProcess, shut_down
from tests.waiting import eventually

ADMIN_KEY = "tls-test-admin-key-0123456789abcdef0123456789"


def vigil_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env["VIGIL_BOOTSTRAP_ADMIN_KEY"] = ADMIN_KEY  # where the API asks for credentials
    return env


def up(tmp_path: Path, *options: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "services.cli", "up", "--data-dir", str(tmp_path / "data")]
    return subprocess.Popen(
        [*argv, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=vigil_env(),
    )


@pytest.fixture
def cert_pair(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path / "tls", names=("vigil.example.com",), loopback=False)


@pytest.fixture
def vigil_tls(tmp_path: Path, cert_pair: tuple[Path, Path]) -> Iterator[VigilProcess]:
    cert, key = cert_pair
    port = free_port()
    process = up(
        tmp_path,
        *("--port", str(port), "--agent-interval", "1"),
        *("--tls-cert", str(cert), "--tls-key", str(key)),
    )
    vigil = VigilProcess(process, port, tmp_path / "data")

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            vigil.lines.append(line.rstrip())

    threading.Thread(target=pump, daemon=True).start()
    try:
        vigil.wait_for_line("vigil is up", timeout=90)
        yield vigil
    finally:
        shut_down(vigil)


async def test_vigil_up_serves_https_and_its_agent_reports_over_it(
    vigil_tls: VigilProcess, cert_pair: tuple[Path, Path]
) -> None:
    cert, _ = cert_pair
    base = f"https://127.0.0.1:{vigil_tls.port}"
    assert any(line.startswith("vigil is up: https://") for line in vigil_tls.lines)
    # the certificate names another host: a client pins it, as the agent does
    pinned = ssl.create_default_context(cafile=str(cert))
    pinned.check_hostname = False
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=base, verify=pinned, headers=headers) as http:
        assert (await http.get("/health")).status_code == 200

        async def agent_samples() -> bool:
            response = await http.get(
                "/api/monitoring/metrics", params={"name": "system_cpu_percent", "limit": 5}
            )
            return response.status_code == 200 and bool(response.json())

        await eventually(agent_samples, within_s=30, what="the agent's samples over HTTPS")
    async with httpx.AsyncClient() as plain:
        with pytest.raises(httpx.HTTPError):
            await plain.get(f"http://127.0.0.1:{vigil_tls.port}/health")
    assert not any("CERTIFICATE_VERIFY_FAILED" in line for line in vigil_tls.lines)


def test_vigil_up_refuses_a_certificate_without_its_key(
    tmp_path: Path, cert_pair: tuple[Path, Path]
) -> None:
    cert, _ = cert_pair
    _, other_key = self_signed(tmp_path / "other")
    refused = up(tmp_path, "--port", str(free_port()), "--tls-cert", str(cert))
    output, _ = refused.communicate(timeout=60)
    assert refused.returncode == 2
    assert "--tls-cert and --tls-key go together" in output

    mismatched = up(
        tmp_path, "--port", str(free_port()), "--tls-cert", str(cert), "--tls-key", str(other_key)
    )
    output, _ = mismatched.communicate(timeout=60)
    assert mismatched.returncode == 2
    assert f"--tls-cert {cert}" in output and "cannot be loaded" in output
    assert not (tmp_path / "data" / "nats").exists()  # nothing was started
