"""The whole system started the way a user starts it: ``vigil up`` in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
from aiohttp import web

from shared.natsserver import free_port
from tests.conftest import ADMIN_HEADERS, TEST_ADMIN_KEY

WEBHOOK_SECRET = "e2e-secret"


@dataclass
class WebhookReceiver:
    """A real HTTP endpoint that checks every delivery's signature and keeps the payloads."""

    secret: str
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    bad_signatures: int = 0
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Vigil-Signature", "")):
            self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        self.received.append(orjson.loads(body))
        self.headers.append(dict(request.headers))
        self.arrived.set()
        return web.Response(status=204)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [p for p in self.received if p.get("event") == kind]

    async def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"webhook never satisfied the condition; got {self.received}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), 0.5)


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver(WEBHOOK_SECRET, port=free_port())
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
    yield receiver
    await runner.cleanup()


@dataclass
class VigilProcess:
    process: subprocess.Popen[str]
    port: int
    data_dir: Path
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.AsyncClient:
        """A client with the bootstrap admin key."""
        return httpx.AsyncClient(base_url=self.url, timeout=10.0, headers=ADMIN_HEADERS)

    def tree(self) -> list[psutil.Process]:
        try:
            return [
                psutil.Process(self.process.pid),
                *psutil.Process(self.process.pid).children(recursive=True),
            ]
        except psutil.NoSuchProcess:
            return []

    def service_pid(self, service: str) -> int:
        for child in psutil.Process(self.process.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.cmdline()[-2:] == ["run", service]:
                    return child.pid
        raise LookupError(service)

    def wait_for_line(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"never printed {text!r}; output so far: {self.lines}")

    def stop(self, timeout: float = 10.0) -> float:
        started = time.monotonic()
        tree = self.tree()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)
        psutil.wait_procs(tree, timeout=timeout)
        return time.monotonic() - started


def write_config(path: Path, receiver_port: int, extra: str = "") -> Path:
    path.write_text(
        f"""
rules:
  - name: CheckoutLatency
    metric: checkout_latency_ms
    warning: 500
    critical: 1000
channels:
  - name: ops-webhook
    type: webhook
    url: http://127.0.0.1:{receiver_port}/hook
    secret: {WEBHOOK_SECRET}
{extra}
"""
    )
    return path


def start_vigil(
    tmp_path: Path,
    receiver: WebhookReceiver,
    env_extra: dict[str, str],
    extra_config: str = "",
    agent: bool = False,
    config: Path | None = None,
) -> VigilProcess:
    """``vigil up`` in its own process with a config that pages ``receiver`` (or the given
    ``config`` file), and the bootstrap admin key (unless ``env_extra`` sets
    VIGIL_BOOTSTRAP_ADMIN_KEY to "")."""
    if config is None:
        config = write_config(tmp_path / "vigil.yaml", receiver.port, extra_config)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env["VIGIL_BOOTSTRAP_ADMIN_KEY"] = TEST_ADMIN_KEY
    env.update(env_extra)
    if not env["VIGIL_BOOTSTRAP_ADMIN_KEY"]:
        del env["VIGIL_BOOTSTRAP_ADMIN_KEY"]
    argv = [sys.executable, "-m", "services.cli", "up", "--port", str(port)]
    if not agent:
        argv.append("--no-agent")
    argv += ["--data-dir", str(tmp_path / "data"), "--config", str(config)]
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


def shut_down(vigil: VigilProcess) -> None:
    if vigil.process.poll() is None:
        tree = vigil.tree()
        vigil.process.send_signal(signal.SIGTERM)
        try:
            vigil.process.wait(15)
        except subprocess.TimeoutExpired:
            for proc in tree:
                with contextlib.suppress(psutil.Error):
                    proc.kill()


@pytest.fixture
def vigil_up(tmp_path: Path, webhook_receiver: WebhookReceiver) -> Iterator[VigilProcess]:
    """The system as a new user starts it: embedded NATS and SQLite."""
    vigil = start_vigil(tmp_path, webhook_receiver, {})
    try:
        yield vigil
    finally:
        shut_down(vigil)


@pytest.fixture(params=["embedded", "external"])
def vigil_system(
    request: pytest.FixtureRequest, tmp_path: Path, webhook_receiver: WebhookReceiver
) -> Iterator[VigilProcess]:
    """Embedded NATS + SQLite, or NATS_URL + DATABASE_URL (PostgreSQL) as in production."""
    env: dict[str, str] = {}
    if request.param == "external":
        nats_server = request.getfixturevalue("nats_server")
        env = {"NATS_URL": nats_server.url, "DATABASE_URL": request.getfixturevalue("postgres_url")}
    vigil = start_vigil(tmp_path, webhook_receiver, env)
    try:
        yield vigil
    finally:
        shut_down(vigil)


SMALL_DISK_MB = 64


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs as the data dir (``tmp_path / "data"``), so it can be filled for real."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "data"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_MB}m", "tmpfs", str(mount)],
        check=True,
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_disk(directory: Path, leave_bytes: int = 0) -> Path:
    """Write ballast until only ``leave_bytes`` are free; remove the file to free them."""
    ballast = directory / f"ballast-{leave_bytes}"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                stat = os.statvfs(directory)
                room = stat.f_bavail * stat.f_frsize - leave_bytes
                if room <= 0:
                    break
                os.write(fd, b"\0" * min(room, 1 << 20))
    finally:
        os.close(fd)
    return ballast
