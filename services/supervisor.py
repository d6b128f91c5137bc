"""``vigil up``: one command that runs the whole system as a supervised process tree.

Each service is its own process (``vigil run <service>``), so a crash of one is
contained and restarted, and the two cores are shared by the OS, not one GIL.
The embedded nats-server is supervised the same way: restarted on the same port
and store when it exits, or when its store stopped taking writes and has room again.
Children die with the supervisor (PR_SET_PDEATHSIG) even if it is killed hard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.datadir import writable
from shared.natsauth import AGENT_USER, CLI_USER, embedded_authorization
from shared.natsserver import EmbeddedNats, die_with_parent, free_port, stop_leftovers
from shared.services import SERVICES

log = logging.getLogger(__name__)

NATS_START_TIMEOUT_S = 60.0  # a large store takes a while to recover
HEALTH_POLL_S = 1.0
# /healthz must fail this many polls in a row: one failed answer may be a blip
UNHEALTHY_POLLS = 2
STOP_TIMEOUT_S = 5.0


# Storing samples is bulk work nobody waits for; under load the scheduler should
# favour the services on the path from a sample to a page.
NICENESS = {"metrics": 5, "synthetic": 5, "agent": 10}


def child_setup(niceness: int) -> Callable[[], None]:
    """What runs in the child before exec: die with the supervisor, and lower priority."""

    die = die_with_parent(signal.SIGTERM)

    def setup() -> None:
        die()
        if niceness:
            with contextlib.suppress(OSError):
                os.nice(niceness)

    return setup


AGENT_KEY_FILE = "agent.key"


def agent_key_file(data_dir: Path) -> Path:
    """The host agent's ingest key, made once per data dir (random, mode 0600)."""
    path = data_dir.resolve() / AGENT_KEY_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"vk_agent_{secrets.token_urlsafe(32)}\n")
    return path


@dataclass
class Backoff:
    """Restart delays that grow with crashes in a row and start over after a stable run.

    A process that ran for ``stable_s`` before it died gets the short first delay again:
    what matters after a one-off crash is paging again soon.
    """

    first_s: float = 0.5
    max_s: float = 15.0
    stable_s: float = 30.0
    failures: int = 0

    def delay(self, ran_for_s: float) -> float:
        if ran_for_s >= self.stable_s:
            self.failures = 0
        self.failures += 1
        return min(self.first_s * 2 ** (self.failures - 1), self.max_s)


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: int = 0
    backoff: Backoff = field(default_factory=Backoff)


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
    tls_cert: Path | None = None  # the gateway serves HTTPS with these
    tls_key: Path | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


class Supervisor:
    def __init__(self, options: UpOptions):
        self.options = options
        self.nats: EmbeddedNats | None = None
        self.nats_process: asyncio.subprocess.Process | None = None
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
            # each child logs in as itself and reads its password from the data dir
            env.pop("VIGIL_NATS_USER", None)
            env.pop("VIGIL_NATS_PASSWORD", None)
        if opts.tls_cert is not None and opts.tls_key is not None:
            env["VIGIL_TLS_CERT"] = str(opts.tls_cert.resolve())
            env["VIGIL_TLS_KEY"] = str(opts.tls_key.resolve())
        if opts.agent:  # the gateway makes sure this ingest key exists; the agent sends it
            env["VIGIL_AGENT_KEY_FILE"] = str(agent_key_file(opts.data_dir))
        return env

    def _child_environment(self, child: Child) -> dict[str, str]:
        if self.nats is None or self.nats.authorization is None or child.name == AGENT_USER:
            return self.env
        return {**self.env, "VIGIL_NATS_USER": child.name}

    async def _declare_streams(self, nats: EmbeddedNats) -> None:
        """Create the streams, and apply changed limits, as the CLI user: services may
        create a missing stream but never change one."""
        from shared.bus import log_session
        from shared.settings import Settings

        settings = Settings().model_copy(
            update={
                "nats_url": nats.url,
                "data_dir": self.options.data_dir.resolve(),
                "nats_user": CLI_USER,
                "nats_password": None,
            }
        )
        try:
            async with log_session(settings, "supervisor"):
                pass
        except Exception as exc:
            print(f"vigil nats: could not declare the streams: {exc}", flush=True)

    async def _spawn(self, child: Child) -> None:
        child.ready.clear()
        logfile = open(child.log_path, "ab")  # noqa: SIM115, ASYNC230 - handed to the child
        child.process = await asyncio.create_subprocess_exec(
            *child.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=logfile,
            stdin=asyncio.subprocess.DEVNULL,
            env=self._child_environment(child),
            preexec_fn=child_setup(NICENESS.get(child.name, 0)),
        )
        logfile.close()

    async def _watch(self, child: Child) -> None:
        """Forward readiness, and restart the child if it dies while we are running."""
        while not self.stopping.is_set():
            await self._spawn(child)
            started = time.monotonic()
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
            delay = child.backoff.delay(time.monotonic() - started)
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
            gateway = f"{self.options.scheme}://127.0.0.1:{self.options.port}"
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

    async def _supervise_nats(self, nats: EmbeddedNats, up: asyncio.Event) -> None:
        """Run nats-server; restart it (same port, same store) whenever it exits or its
        store stopped taking writes. Services reconnect by themselves."""
        backoff = Backoff()
        while True:
            process = self.nats_process = await nats.spawn()
            started = time.monotonic()
            if await nats.listening(process, NATS_START_TIMEOUT_S):
                print(
                    f"vigil nats {'restarted' if up.is_set() else 'ready'} ({nats.url})", flush=True
                )
                up.set()
                problem = await self._until_unhealthy(nats, process)
                if problem is not None:
                    await self._restart_when_writable(nats, process, problem)
            elif process.returncode is None:
                print(f"vigil nats did not listen within {NATS_START_TIMEOUT_S:.0f}s", flush=True)
                await _stop_process(process, STOP_TIMEOUT_S)
            code = await process.wait()
            delay = backoff.delay(time.monotonic() - started)
            print(
                f"vigil nats exited with {code}; restarting in {delay:.1f}s (log: {nats.log_file})",
                flush=True,
            )
            await asyncio.sleep(delay)

    async def _until_unhealthy(
        self, nats: EmbeddedNats, process: asyncio.subprocess.Process
    ) -> str | None:
        """Wait until nats-server exits (None) or reports a fault (what it says).

        After a write error (disk full, I/O error) nats-server keeps the stream
        refusing writes until it is restarted, while still answering clients.
        """
        failed = 0
        while process.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), HEALTH_POLL_S)
                return None
            problem = await nats.health_problem()
            failed = failed + 1 if problem else 0
            if problem and failed >= UNHEALTHY_POLLS:
                return problem
        return None

    async def _restart_when_writable(
        self, nats: EmbeddedNats, process: asyncio.subprocess.Process, problem: str
    ) -> None:
        print(
            f"vigil nats: JetStream is failing ({problem}); "
            f"restarting it once {nats.store_dir} has room and is writable",
            flush=True,
        )
        while process.returncode is None and not await asyncio.to_thread(writable, nats.store_dir):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), HEALTH_POLL_S)
        await _stop_process(process, STOP_TIMEOUT_S)

    async def run(self) -> int:
        opts = self.options
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        nats_task: asyncio.Task[None] | None = None
        if opts.nats_url is None:
            self.nats = EmbeddedNats(
                opts.data_dir / "nats",
                sync_always=opts.sync_always,
                monitor_port=free_port(),
                authorization=embedded_authorization(opts.data_dir),
            )
            for pid in await asyncio.to_thread(stop_leftovers, self.nats.config_file):
                print(
                    f"vigil stopped a leftover nats-server (pid {pid}) of this data dir", flush=True
                )
            nats_up = asyncio.Event()
            nats_task = asyncio.create_task(self._supervise_nats(self.nats, nats_up))
            await _first(nats_up.wait(), self.stopping.wait())
            if self.stopping.is_set():
                await self._stop_nats(nats_task)
                print("vigil stopped", flush=True)
                return 0
            await self._declare_streams(self.nats)
        self.env = self._environment()
        self.children = self._children()
        watchers = [asyncio.create_task(self._watch(child)) for child in self.children]
        try:
            services = [c for c in self.children if c.name != "agent"]
            await _first(asyncio.gather(*(c.ready.wait() for c in services)), self.stopping.wait())
            if not self.stopping.is_set():
                print(f"vigil is up: {opts.scheme}://{opts.host}:{opts.port}/", flush=True)
            await self.stopping.wait()
        finally:
            self.stopping.set()
            await self._stop_children()
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            if nats_task is not None:
                await self._stop_nats(nats_task)
            print("vigil stopped", flush=True)
        return 0

    async def _stop_nats(self, task: asyncio.Task[None]) -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if self.nats_process is not None:
            await _stop_process(self.nats_process, STOP_TIMEOUT_S)

    async def _stop_children(self, timeout: float = STOP_TIMEOUT_S) -> None:
        running = [c.process for c in self.children if c.process and c.process.returncode is None]
        await asyncio.gather(*(_stop_process(process, timeout) for process in running))


async def _stop_process(process: asyncio.subprocess.Process, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def _first(*waits: Awaitable[Any]) -> None:
    """Wait until the first of ``waits`` completes; cancel the rest."""
    futures = {asyncio.ensure_future(wait) for wait in waits}
    _, pending = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    for future in pending:
        future.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
