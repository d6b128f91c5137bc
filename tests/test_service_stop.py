"""A service asked to stop is gone within the deadline, however stuck it is.

The supervisor's children get SIGTERM when it dies (even by SIGKILL); a child that
lingered would hold ports and files the next supervisor needs, and keep consuming.
Each case is a real process built on the runtime, stuck in a different place.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from shared.natsserver import EmbeddedNats, free_port
from shared.runtime import EXIT_ABANDONED, EXIT_DEADLINE_S

REPO = Path(__file__).resolve().parents[1]

SERVICE = """
import asyncio, sys, time
from shared.logs import configure_logging
from shared.runtime import ServiceRuntime
from shared.settings import Settings

configure_logging("INFO")
runtime = ServiceRuntime("probe", Settings())

async def hangs() -> None:
    print("starting", flush=True)
    await asyncio.Event().wait()

async def blocks_a_thread() -> None:
    await asyncio.to_thread(time.sleep, 3600)

if sys.argv[1] == "stuck-start":
    runtime.on_start(hangs)
elif sys.argv[1] == "stuck-stop":
    runtime.on_stop(blocks_a_thread)
asyncio.run(runtime.run_until_signalled())
"""


async def start(mode: str, nats_url: str, tmp_path: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "VIGIL_"))}
    env.update(NATS_URL=nats_url, VIGIL_DATA_DIR=str(tmp_path / "data"))
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


async def first_line(process: asyncio.subprocess.Process) -> bytes:
    assert process.stdout is not None
    return await asyncio.wait_for(process.stdout.readline(), 30)


async def stopped_within(process: asyncio.subprocess.Process, seconds: float) -> float:
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.communicate(), seconds)
    except TimeoutError:
        process.kill()
        await process.communicate()
        pytest.fail(f"still running {seconds:g} s after SIGTERM")
    return time.monotonic() - began


async def test_a_service_stops_at_once_when_nothing_is_stuck(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    process = await start("plain", nats_server.url, tmp_path)
    assert await first_line(process) == b"vigil probe ready\n"
    assert await stopped_within(process, EXIT_DEADLINE_S) < EXIT_DEADLINE_S / 2
    assert process.returncode == 0


async def test_a_signal_during_start_ends_the_start(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    process = await start("stuck-start", nats_server.url, tmp_path)
    assert await first_line(process) == b"starting\n"
    await stopped_within(process, EXIT_DEADLINE_S + 5)
    assert process.returncode == 0


async def test_a_signal_while_the_broker_is_unreachable_ends_the_process(tmp_path: Path) -> None:
    """As after the supervisor's death, when its embedded broker went with it."""
    process = await start("plain", f"nats://127.0.0.1:{free_port()}", tmp_path)
    await asyncio.sleep(1.0)  # connecting, and retrying
    assert process.returncode is None
    await stopped_within(process, EXIT_DEADLINE_S + 5)


async def test_a_stop_stuck_in_a_thread_is_cut_short(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    process = await start("stuck-stop", nats_server.url, tmp_path)
    assert await first_line(process) == b"vigil probe ready\n"
    took = await stopped_within(process, EXIT_DEADLINE_S + 5)
    assert took >= EXIT_DEADLINE_S - 0.5
    assert process.returncode == EXIT_ABANDONED


async def test_a_second_signal_exits_at_once(nats_server: EmbeddedNats, tmp_path: Path) -> None:
    process = await start("stuck-stop", nats_server.url, tmp_path)
    assert await first_line(process) == b"vigil probe ready\n"
    process.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.5)
    took = await stopped_within(process, EXIT_DEADLINE_S / 2)
    assert took < EXIT_DEADLINE_S / 2
    assert process.returncode == EXIT_ABANDONED
