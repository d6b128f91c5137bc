"""A service's own errors reach Sentry: a real service process, a real SDK, and a local
receiver of Sentry envelopes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.natsserver import EmbeddedNats
from shared.sentry import init_sentry, vigil_version
from tests.receivers.sentry import Invalid, SentryReceiver, parse_envelope
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[1]

# A service built on the runtime, as every Vigil service is. "crash": its start fails,
# so the error escapes the process; "log": a background task fails while it serves,
# which the runtime logs (and restarts) -- the error path of a running service.
SERVICE = """
import asyncio, sys
from shared.logs import configure_logging
from shared.runtime import ServiceRuntime
from shared.settings import Settings

configure_logging("INFO")
runtime = ServiceRuntime("probe", Settings())
failed = False

async def corrupt() -> None:
    raise RuntimeError("store is corrupt at page 7")

async def fails_once() -> None:
    global failed
    if not failed:
        failed = True
        raise ValueError("projection went backwards")
    await asyncio.Event().wait()

if sys.argv[1] == "crash":
    runtime.on_start(corrupt)
else:
    runtime.background(fails_once)
asyncio.run(runtime.run_until_signalled())
"""


@pytest.fixture
async def receiver() -> AsyncIterator[SentryReceiver]:
    async with SentryReceiver() as started:
        yield started


def environment(nats: EmbeddedNats, tmp_path: Path, dsn: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "VIGIL_"))}
    env.update(
        NATS_URL=nats.url,
        VIGIL_DATA_DIR=str(tmp_path / "data"),
        VIGIL_ENVIRONMENT="staging",
        SENTRY_DSN=dsn,
        # a user and an address the report must not carry
        USER="alice",
        REMOTE_ADDR="203.0.113.7",
    )
    return env


async def start_service(mode: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVICE,
        mode,
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def assert_reported(event: dict[str, Any], exc_type: str, exc_value: str) -> None:
    [exception] = event["exception"]["values"][-1:]
    assert exception["type"] == exc_type
    assert exception["value"] == exc_value
    assert event["tags"]["service"] == "probe"
    assert event["release"] == f"vigil@{vigil_version()}"
    assert event["environment"] == "staging"
    assert event.get("server_name")
    # no personal data: no user, no request, no client address
    assert "user" not in event
    assert "request" not in event
    text = str(event)
    assert "203.0.113.7" not in text


async def test_an_error_that_ends_a_service_reaches_sentry(
    receiver: SentryReceiver, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    process = await start_service("crash", environment(nats_server, tmp_path, receiver.dsn))
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode != 0, stderr.decode()
    assert b"store is corrupt at page 7" in stderr  # still in its own log, too
    [event] = await eventually(receiver.events, 10, "the error reported")
    assert_reported(event, "RuntimeError", "store is corrupt at page 7")
    assert event["level"] in ("error", "fatal")
    assert not receiver.rejected


async def test_an_error_logged_by_a_running_service_reaches_sentry(
    receiver: SentryReceiver, nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    process = await start_service("log", environment(nats_server, tmp_path, receiver.dsn))
    try:
        [event] = await eventually(receiver.events, 30, "the error reported")
        assert_reported(event, "ValueError", "projection went backwards")
        assert event["logger"] == "shared.runtime"
        assert event["logentry"]["message"] == "background task failed; restarting"
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0


async def test_a_bad_dsn_does_not_stop_a_service(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    env = environment(nats_server, tmp_path, "https://no-project-here")
    process = await start_service("log", env)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line == b"vigil probe ready\n"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert b"SENTRY_DSN is not usable" in stderr
    assert b"no-project-here" not in stderr  # the DSN is a credential: never logged


def test_without_a_dsn_nothing_is_set_up(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert init_sentry("probe", {}) is False
        assert init_sentry("probe", {"SENTRY_DSN": "  "}) is False
    assert not caplog.records


def test_the_receiver_refuses_a_broken_envelope() -> None:
    body = b'{"event_id":"e1"}\n{"type":"event","length":7}\n{"a":1}\n{"type":"event"}\n{}\n'
    envelope = parse_envelope(body)
    assert [item.json() for item in envelope.items] == [{"a": 1}, {}]
    with pytest.raises(Invalid, match="declares 70 bytes"):
        parse_envelope(b'{}\n{"type":"event","length":70}\n{"a":1}\n')
    with pytest.raises(Invalid, match="without a type"):
        parse_envelope(b'{}\n{"length":2}\n{}\n')
