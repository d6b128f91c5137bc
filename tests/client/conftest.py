"""A real HTTP receiver that checks every batch the way Vigil's gateway does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from services.gateway.metrics.batch import parse_sample_batch
from shared.errors import VigilError

INGEST_KEY = "vk_test_ingest-key"


@dataclass
class IngestReceiver:
    """``POST /api/monitoring/metrics``: answers like Vigil, or fails, or hangs, on demand.

    ``mode`` is ``accept`` (202 after the gateway's own validation), ``unavailable`` (503)
    or ``hang`` (holds the request until ``release`` is set).
    """

    mode: str = "accept"
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    attempts: int = 0
    held: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def handle(self, path: str, headers: Any, body: bytes) -> tuple[int, bytes]:
        with self.lock:
            self.attempts += 1
        if self.mode == "hang":
            with self.lock:
                self.held += 1
            self.release.wait(60)
            return 503, b'{"detail":"released"}'
        if self.mode == "unavailable":
            return 503, b'{"detail":"busy"}'
        problem = self._problem(path, headers)
        if problem is None:
            try:
                samples = parse_sample_batch(body)
            except VigilError as exc:
                problem = str(exc)
            else:
                with self.lock:
                    self.batches.append([dict(s) for s in samples])
                    self.keys.append(headers.get("Idempotency-Key", ""))
                return 202, b'{"accepted":%d}' % len(samples)
        with self.lock:
            self.refused.append(problem)
        return 422, problem.encode()

    @staticmethod
    def _problem(path: str, headers: Any) -> str | None:
        if path != "/api/monitoring/metrics":
            return f"path: {path}"
        if headers.get("Authorization") != f"Bearer {INGEST_KEY}":
            return f"authorization: {headers.get('Authorization')!r}"
        if headers.get("Content-Type") != "application/json":
            return f"content-type: {headers.get('Content-Type')!r}"
        return None

    def samples(self, name: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            every = [s for batch in self.batches for s in batch]
        return [s for s in every if name is None or s["name"] == name]

    def value(self, name: str, **labels: str) -> float | None:
        """The last value received of a series ``name`` whose labels include ``labels``."""
        found = [s for s in self.samples(name) if labels.items() <= s["labels"].items()]
        return float(found[-1]["value"]) if found else None

    def latest(self, name: str, **labels: str) -> float:
        found = self.value(name, **labels)
        assert found is not None, f"no {name} {labels}; got {self.samples()[-30:]}"
        return found

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"never happened; received {self.samples()[-20:]}")
            time.sleep(0.02)


def _handler(receiver: IngestReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, answer = receiver.handle(self.path, self.headers, body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[IngestReceiver]:
    receiver = IngestReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
