"""``vigil up``: one command that runs the whole system as a supervised process tree.

Each service is its own process (``vigil run <service>``), so a crash of one is
contained and restarted, and the two cores are shared by the OS, not one GIL.
Children die with the supervisor (PR_SET_PDEATHSIG) even if it is killed hard.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.natsserver import EmbeddedNats
from shared.services import SERVICES

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


# Storing samples is bulk work nobody waits for; under load the scheduler should
# favour the services on the path from a sample to a page.
NICENESS = {"metrics": 5, "synthetic": 5, "agent": 10}


def child_setup(niceness: int) -> Callable[[], None]:
    """What runs in the child before exec: die with the supervisor, and lower priority."""

    def setup() -> None:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if niceness:
            with contextlib.suppress(OSError):
                os.nice(niceness)

    return setup


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: int = 0


@dataclass
class UpOptions:
    port: int = 8080
    host: str = "127.0.0.1"
    data_dir: Path = Path(".vigil")
    config: Path | None = None
    sync_always: bool = False
    agent: bool = True
    agent_interval_s: float = 10.0
    services: tuple[str, ...] = SERVICES
    nats_url: str | None = None  # an existing server (NATS_URL); None starts the embedded one


class Supervisor:
    def __init__(self, options: UpOptions):
        self.options = options
        self.nats: EmbeddedNats | None = None
        self.children: list[Child] = []
        self.stopping = asyncio.Event()
        self.env: dict[str, str] = {}

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        opts = self.options
        env["VIGIL_DATA_DIR"] = str(opts.data_dir.resolve())
        env["VIGIL_PORT"] = str(opts.port)
        env["VIGIL_HOST"] = opts.host
        if opts.config is not None:
            env["VIGIL_CONFIG"] = str(opts.config.resolve())
        if self.nats is not None:
            env["NATS_URL"] = self.nats.url
        return env

    async def _spawn(self, child: Child) -> None:
        child.ready.clear()
        logfile = open(child.log_path, "ab")  # noqa: SIM115, ASYNC230 - handed to the child
        child.process = await asyncio.create_subprocess_exec(
            *child.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=logfile,
            stdin=asyncio.subprocess.DEVNULL,
            env=self.env,
            preexec_fn=child_setup(NICENESS.get(child.name, 0)),
        )
        logfile.close()

    async def _watch(self, child: Child) -> None:
        """Forward readiness, and restart the child if it dies while we are running."""
        while not self.stopping.is_set():
            await self._spawn(child)
            assert child.process is not None and child.process.stdout is not None
            async for raw in child.process.stdout:
                line = raw.decode(errors="replace").rstrip()
                if line.endswith("ready"):
                    child.ready.set()
                if line:
                    print(line, flush=True)
            code = await child.process.wait()
            if self.stopping.is_set():
                return
            child.restarts += 1
            delay = min(0.5 * 2 ** min(child.restarts, 5), 15.0)
            print(
                f"vigil {child.name} exited with {code}; restarting in {delay:.1f}s "
                f"(log: {child.log_path})",
                flush=True,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    def _children(self) -> list[Child]:
        logs = self.options.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        vigil = [sys.executable, "-m", "services.cli"]
        children = [
            Child(name, [*vigil, "run", name], logs / f"{name}.log")
            for name in self.options.services
        ]
        if self.options.agent:
            gateway = f"http://127.0.0.1:{self.options.port}"
            argv = [
                *vigil,
                "agent",
                "--gateway",
                gateway,
                "--interval",
                str(self.options.agent_interval_s),
            ]
            children.append(Child("agent", argv, logs / "agent.log"))
        return children

    async def run(self) -> int:
        opts = self.options
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        if opts.nats_url is None:
            self.nats = EmbeddedNats(opts.data_dir / "nats", sync_always=opts.sync_always)
            await asyncio.to_thread(self.nats.start)
            print(f"vigil nats ready ({self.nats.url})", flush=True)
        self.env = self._environment()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        self.children = self._children()
        watchers = [asyncio.create_task(self._watch(child)) for child in self.children]
        try:
            services = [c for c in self.children if c.name != "agent"]
            waits: set[asyncio.Future[Any]] = {
                asyncio.ensure_future(asyncio.gather(*(c.ready.wait() for c in services))),
                asyncio.ensure_future(self.stopping.wait()),
            }
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for future in pending:
                future.cancel()
            if not self.stopping.is_set():
                print(f"vigil is up: http://{opts.host}:{opts.port}/", flush=True)
            await self.stopping.wait()
        finally:
            self.stopping.set()
            await self._stop_children()
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            if self.nats is not None:
                await asyncio.to_thread(self.nats.stop)
            print("vigil stopped", flush=True)
        return 0

    async def _stop_children(self, timeout: float = 5.0) -> None:
        running = [c.process for c in self.children if c.process and c.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in running:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                await asyncio.wait_for(process.wait(), remaining)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
