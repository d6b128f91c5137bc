"""``vigil silence add|list|expire`` run as a process against a started gateway's real HTTP
server, with the alerts service answering behind it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.alerts.app import build as build_alerts
from services.gateway.app import Gateway
from shared.config import VigilConfig
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN, ADMIN_KEY, headers_for
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Cli:
    url: str
    key: str

    async def __call__(self, *args: str, key: str | None = None) -> Ran:
        env = {**os.environ, "VIGIL_API_KEY": self.key if key is None else key}
        env.pop("VIGIL_URL", None)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            "silence",
            *args,
            "--url",
            self.url,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return Ran(process.returncode, out.decode(), err.decode())


@pytest.fixture
async def cli(
    gateway: Gateway, gateway_settings: Settings, start_service: RuntimeFactory
) -> AsyncIterator[Cli]:
    await start_service(build_alerts(gateway_settings, VigilConfig(rules=[])))
    await eventually(lambda: gateway.http.started)
    yield Cli(f"http://127.0.0.1:{gateway_settings.port}", ADMIN_KEY)


async def test_add_list_and_expire_a_silence(cli: Cli) -> None:
    added = await cli(
        "add", "host=web-1", "severity=~warn.*", "--for", "2h", "--comment", "deploy",
        "--author", "ann",
    )  # fmt: skip
    assert added.code == 0, added.err
    silence_id = added.out.strip()
    assert len(silence_id) == 36  # a UUID, as Alertmanager's

    listed = await cli("list")
    assert listed.code == 0, listed.err
    first, comment = listed.out.splitlines()
    assert first.startswith(f"{silence_id}  active ")
    assert 'by ann  host="web-1", severity=~"warn.*"' in first
    assert comment.strip() == "deploy"
    assert (await cli("list", "host=web-2")).out.strip() == "no silences"
    assert (await cli("list", "host=web-1")).out.startswith(silence_id)

    expired = await cli("expire", silence_id)
    assert (expired.code, expired.out.strip()) == (0, f"{silence_id}: expired")
    assert (await cli("list")).out.strip() == "no silences"
    assert (await cli("list", "--expired")).out.startswith(f"{silence_id}  expired ")

    again = await cli("expire", silence_id)
    assert again.code == 1 and "409" in again.err and "already expired" in again.err


async def test_a_bare_word_names_the_alert_and_a_start_may_be_later(cli: Cli) -> None:
    added = await cli("add", "HighCPU", "--start", "2099-01-01T00:00:00Z", "--for", "1h")
    assert added.code == 0, added.err
    listed = (await cli("list")).out
    assert f"{added.out.strip()}  pending  2099-01-01T00:00:00Z → 2099-01-01T01:00:00Z" in listed
    assert 'alertname="HighCPU"' in listed


async def test_mistakes_are_told_in_one_line(cli: Cli, gateway: Gateway) -> None:
    no_matcher = await cli("add", "--for", "1h")
    assert no_matcher.code == 2 and "give at least one matcher" in no_matcher.err
    bad_regex = await cli("add", "host=~web-(")
    assert bad_regex.code == 2 and "host=~web-(: invalid regular expression" in bad_regex.err
    everything = await cli("add", "host=~.*")
    assert everything.code == 1
    assert "422: matchers: at least one matcher must not match the empty string" in everything.err
    past = await cli("add", "host=a", "--end", "2001-01-01T00:00:00Z")
    assert past.code == 1 and "endsAt" in past.err
    bad_duration = await cli("add", "host=a", "--for", "soon")
    assert bad_duration.code == 2 and "--for:" in bad_duration.err
    unknown = await cli("expire", "no-such-silence")
    assert unknown.code == 1 and "404" in unknown.err
    no_key = await cli("list", key="")
    assert no_key.code == 2 and "VIGIL_API_KEY" in no_key.err
    wrong_key = await cli("list", key="vk_nope")
    assert wrong_key.code == 1 and "401" in wrong_key.err

    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        viewer = (await headers_for(gateway.app, http, "viewer"))["Authorization"]
        assert (await http.get("/api/monitoring/silences", headers=ADMIN)).json() == []
    as_viewer = await cli("add", "host=a", key=viewer.removeprefix("Bearer "))
    assert as_viewer.code == 1 and "403" in as_viewer.err
    assert (await cli("list", key=viewer.removeprefix("Bearer "))).code == 0


async def test_an_unreachable_gateway_is_said_so(cli: Cli) -> None:
    gone = Cli("http://127.0.0.1:9", ADMIN_KEY)
    ran = await gone("list")
    assert ran.code == 1 and "cannot reach the gateway at http://127.0.0.1:9" in ran.err
