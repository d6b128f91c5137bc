"""The system under test: ``vigil up`` on one data dir and port, its process tree, kills."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil

from shared.natsserver import free_port
from tests.conftest import ADMIN_HEADERS, TEST_ADMIN_KEY
from tests.system.chaos.scenario import NATS, SUPERVISOR, config_text

REPO_ROOT = Path(__file__).resolve().parents[3]
ORPHAN_GRACE_S = 10.0  # a killed supervisor's children have this long to go


@dataclass
class Kill:
    target: str
    planned_at: float  # seconds after the load started
    at: float = 0.0  # monotonic
    pid: int = 0
    restart_s: float | None = None  # supervisor: from the kill to "vigil is up" again
    recovery_s: float | None = None  # from the kill to the first page of a later sample
    note: str = ""


class VigilUnderTest:
    """``vigil up`` on one data dir and port, started again whenever the supervisor dies."""

    def __init__(self, workdir: Path, receiver_port: int, extra_env: dict[str, str] | None = None):
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.port = free_port()
        self.config = workdir / "vigil.yaml"
        self.config.write_text(config_text(receiver_port))
        self.env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
        self.env["VIGIL_BOOTSTRAP_ADMIN_KEY"] = TEST_ADMIN_KEY
        self.env.update(extra_env or {})
        self.process: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.seen: dict[int, psutil.Process] = {}  # every process of every tree, for cleanup
        self.anomalies: list[str] = []
        self.leftovers: list[str] = []  # processes that outlived the supervisor that started them
        self.orphan_checks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> float:
        """Start ``vigil up`` and wait for its "vigil is up"; returns the seconds it took."""
        started = time.monotonic()
        argv = [sys.executable, "-m", "services.cli", "up", "--port", str(self.port)]
        argv += ["--no-agent", "--data-dir", str(self.data_dir), "--config", str(self.config)]
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=REPO_ROOT,  # this checkout's code, whatever else is installed
        )
        self.process = process
        up = threading.Event()
        generation = len([line for line in self.lines if line.startswith("--- start")])
        self.lines.append(f"--- start {generation + 1} (pid {process.pid})")

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                self.lines.append(line.rstrip())
                if "vigil is up" in line:
                    up.set()

        threading.Thread(target=pump, daemon=True).start()
        while not up.wait(0.1):
            if process.poll() is not None or time.monotonic() - started > timeout:
                raise RuntimeError(
                    f"vigil up did not come up (exit {process.poll()}):\n" + self.output(40)
                )
        self.remember_tree()
        return time.monotonic() - started

    def output(self, last: int = 60) -> str:
        return "\n".join(self.lines[-last:])

    def tree(self) -> list[psutil.Process]:
        if self.process is None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def remember_tree(self) -> None:
        for proc in self.tree():
            self.seen.setdefault(proc.pid, proc)

    def pid_of(self, target: str) -> int | None:
        if target == SUPERVISOR:
            return self.process.pid if self.process and self.process.poll() is None else None
        for proc in self.tree()[1:]:
            with contextlib.suppress(psutil.Error):
                argv = proc.cmdline()
                if target == NATS and argv and argv[0].endswith("nats-server"):
                    return proc.pid
                if argv[-2:] == ["run", target]:
                    return proc.pid
        return None

    async def kill(self, kill: Kill, find_timeout: float = 30.0) -> None:
        """SIGKILL the target (waiting for it to exist: it may be between restarts)."""
        deadline = time.monotonic() + find_timeout
        while (pid := self.pid_of(kill.target)) is None:
            if time.monotonic() > deadline:
                kill.note = "never found running"
                self.anomalies.append(f"{kill.target}: not running for {find_timeout:.0f} s")
                return
            await asyncio.sleep(0.2)
        self.remember_tree()
        old_tree = self.tree()
        kill.pid = pid
        kill.at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if kill.target != SUPERVISOR:
            return
        assert self.process is not None
        await asyncio.to_thread(self.process.wait)
        await self.start_again(kill)
        kill.restart_s = time.monotonic() - kill.at
        others = [p for p in old_tree if p.pid != pid]
        self.orphan_checks.append(asyncio.create_task(self._check_orphans(kill, others)))

    async def _check_orphans(self, kill: Kill, others: list[psutil.Process]) -> None:
        """Everything the dead supervisor started must go with it."""
        grace = max(0.1, kill.at + ORPHAN_GRACE_S - time.monotonic())
        _, alive = await asyncio.to_thread(psutil.wait_procs, others, grace)
        survivors = [p for p in alive if _alive(p)]
        if survivors:
            names = ", ".join(f"{_name(p)} ({p.pid})" for p in survivors)
            self.leftovers.append(
                f"{names} still running {ORPHAN_GRACE_S:.0f} s after the supervisor "
                f"({kill.pid}) was killed"
            )

    async def start_again(self, kill: Kill, within_s: float = 60.0) -> None:
        """Start again at once and, while refused, every second: as systemd would."""
        deadline = time.monotonic() + within_s
        refusals: list[str] = []
        while True:
            try:
                await asyncio.to_thread(self.start)
                break
            except RuntimeError as exc:
                refusals.append(str(exc).splitlines()[-1] if str(exc) else "exited")
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)
        if refusals:
            kill.note = f"refused {len(refusals)}x before starting (last: {refusals[-1]})"

    def stop(self) -> None:
        """Stop the current tree, then anything any earlier tree left behind."""
        self.remember_tree()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.anomalies.append("vigil up did not stop within 20 s of SIGTERM")
        leftovers = [p for p in self.seen.values() if _alive(p)]
        for proc in leftovers:
            self.leftovers.append(f"left running after stop: {_name(proc)} ({proc.pid})")
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(leftovers, timeout=5)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _name(proc: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        argv = proc.cmdline()
        if argv and argv[0].endswith("nats-server"):
            return NATS
        if "run" in argv:
            return argv[-1]
        if "up" in argv:
            return SUPERVISOR
    return "?"


class LagWatch:
    """Every durable's lag (pending + unacknowledged) every few seconds: where a backlog sits."""

    def __init__(self, url: Callable[[], str], every_s: float = 5.0):
        self.url = url
        self.every_s = every_s
        self.samples: list[tuple[float, dict[str, int]]] = []

    async def run(self, started: float) -> None:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=5), headers=ADMIN_HEADERS
        ) as session:
            while True:
                health = await get_json(session, self.url() + "/api/monitoring/health/system")
                if health is not None:
                    lags = {c["durable"]: int(c["lag"]) for c in health["consumers"]}
                    self.samples.append((round(time.monotonic() - started, 1), lags))
                await asyncio.sleep(self.every_s)

    def worst(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for _, lags in self.samples:
            for durable, lag in lags.items():
                found[durable] = max(found.get(durable, 0), lag)
        return found


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    """The JSON of a 200 answer, or None (the gateway may be down for a moment)."""
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        async with session.get(url) as response:
            if response.status == 200:
                return orjson.loads(await response.read())
    return None
