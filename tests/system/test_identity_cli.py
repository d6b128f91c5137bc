"""Identity on the whole system: ``vigil up`` with no bootstrap key offers a one-time setup,
makes the agent's ingest key, and ``vigil user|key`` work against it running and stopped."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx

from tests.system.conftest import WebhookReceiver, shut_down, start_vigil
from tests.waiting import eventually

PASSWORD = "correct horse battery"
ME = "/api/monitoring/auth/me"


def vigil(*argv: str, data_dir: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "VIGIL_NATS_URL")}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *argv, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


async def login(url: str, name: str) -> httpx.AsyncClient:
    browser = httpx.AsyncClient(base_url=url, timeout=10.0)
    response = await browser.post(
        "/api/monitoring/auth/login", json={"name": name, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return browser


async def test_setup_agent_key_and_the_cli_against_a_running_and_a_stopped_system(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    system = start_vigil(tmp_path, webhook_receiver, {"VIGIL_BOOTSTRAP_ADMIN_KEY": ""}, agent=True)
    data = system.data_dir
    try:
        setup_lines = [line for line in system.lines if "/monitoring/setup#token=" in line]
        assert len(setup_lines) == 1
        token = setup_lines[0].split("#token=", 1)[1].split()[0]
        agent_key = data / "agent.key"
        assert stat.S_IMODE(agent_key.stat().st_mode) == 0o600

        async with httpx.AsyncClient(base_url=system.url, timeout=10.0) as browser:
            assert (await browser.get(ME)).status_code == 401
            made = await browser.post(
                "/api/monitoring/auth/setup",
                json={"token": token, "name": "root", "password": PASSWORD},
            )
            assert made.status_code == 201, made.text
            keys = (await browser.get("/api/monitoring/keys")).json()["items"]
            agent = next(k for k in keys if k["name"] == "vigil-agent")
            assert agent["role"] == "ingest" and agent["active"]
        async with httpx.AsyncClient(
            base_url=system.url,
            headers={"Authorization": f"Bearer {agent_key.read_text().strip()}"},
        ) as as_agent:
            assert (await as_agent.get(ME)).json()["role"] == "ingest"

        # the CLI against the running system: a key works at once and is revoked at once
        created = await asyncio.to_thread(
            vigil, "key", "create", "ci", "--role", "viewer", data_dir=data
        )
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip()
        assert key.startswith("vk_")
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=system.url, headers=headers) as ci:

            async def accepted() -> bool:
                return (await ci.get(ME)).status_code == 200

            await eventually(accepted, within_s=2.0)
            key_id = key.split("_")[1]
            revoked = await asyncio.to_thread(vigil, "key", "revoke", key_id, data_dir=data)
            assert revoked.returncode == 0, revoked.stderr

            async def refused() -> bool:
                return (await ci.get(ME)).status_code == 401

            await eventually(refused, within_s=1.0)

        added = await asyncio.to_thread(
            vigil,
            "user",
            "add",
            "bob",
            "--role",
            "responder",
            "--password-stdin",
            data_dir=data,
            stdin=PASSWORD + "\n",
        )
        assert added.returncode == 0, added.stderr
        bob = await login(system.url, "bob")
        assert (await bob.get(ME)).json()["role"] == "responder"
        await bob.aclose()
    finally:
        shut_down(system)

    # stopped: the CLI opens the data dir's log itself
    offline = await asyncio.to_thread(
        vigil, "user", "add", "carol", "--password-stdin", data_dir=data, stdin=PASSWORD + "\n"
    )
    assert offline.returncode == 0, offline.stderr
    listed = await asyncio.to_thread(vigil, "user", "list", data_dir=data)
    assert [line.split("\t")[:2] for line in listed.stdout.splitlines()] == [
        ["bob", "responder"],
        ["carol", "viewer"],
        ["root", "admin"],
    ]
    keys = await asyncio.to_thread(vigil, "key", "list", data_dir=data)
    assert "revoked" in keys.stdout and "vigil-agent" in keys.stdout
    last_admin = await asyncio.to_thread(vigil, "user", "remove", "root", data_dir=data)
    assert last_admin.returncode == 2 and "last administrator" in last_admin.stderr

    again = start_vigil(tmp_path, webhook_receiver, {"VIGIL_BOOTSTRAP_ADMIN_KEY": ""})
    try:
        assert not any("#token=" in line for line in again.lines)  # an admin exists now
        carol = await login(again.url, "carol")
        assert (await carol.get(ME)).json()["name"] == "carol"
        await carol.aclose()
    finally:
        shut_down(again)
