"""Sending samples to Vigil from a background thread, with a bounded backlog.

Nothing here runs on a request's thread or event loop: the pusher thread collects an
interval every ``flush_interval_s``, queues its samples as batches and posts them with
urllib. When Vigil cannot be reached the batches wait, up to ``max_buffered_samples``;
past that the oldest batches are dropped and counted, so a dead receiver costs a fixed
amount of memory and never slows the application.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("vigil_client")

MAX_BACKOFF_S = 60.0
# answers worth another try: Vigil is busy or restarting; other 4xx will not change
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class Batch:
    """Samples posted together; the key makes a retried post count once in Vigil."""

    key: str
    samples: list[dict[str, Any]]


@dataclass
class PusherStats:
    sent_samples: int = 0
    dropped_samples: int = 0
    rejected_samples: int = 0
    failed_attempts: int = 0
    buffered_samples: int = 0


class SampleBuffer:
    """Batches waiting to be sent, at most ``max_samples`` samples in all; oldest go first."""

    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples
        self.dropped = 0
        self._batches: deque[Batch] = deque()
        self._size = 0
        self._lock = threading.Lock()

    def put(self, batch: Batch, oldest: bool = False) -> None:
        with self._lock:
            if oldest:
                self._batches.appendleft(batch)
            else:
                self._batches.append(batch)
            self._size += len(batch.samples)
            while self._size > self.max_samples and self._batches:
                gone = self._batches.popleft()
                self._size -= len(gone.samples)
                self.dropped += len(gone.samples)

    def take(self) -> Batch | None:
        with self._lock:
            if not self._batches:
                return None
            batch = self._batches.popleft()
            self._size -= len(batch.samples)
            return batch

    def __len__(self) -> int:
        return self._size


class Sent:
    pass


@dataclass
class Retry:
    reason: str
    after_s: float | None = None


@dataclass
class Rejected:
    reason: str


Outcome = Sent | Retry | Rejected


class IngestSender:
    """One POST of a batch to ``POST /api/monitoring/metrics`` with the ingest key."""

    def __init__(self, endpoint: str, ingest_key: str, timeout_s: float) -> None:
        self.endpoint = endpoint
        self.ingest_key = ingest_key
        self.timeout_s = timeout_s

    def send(self, batch: Batch) -> Outcome:
        body = json.dumps(batch.samples, separators=(",", ":"), allow_nan=False).encode()
        request = urllib.request.Request(
            self.endpoint,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.ingest_key}",
                "Idempotency-Key": batch.key,
                "User-Agent": "vigil-client/0.1",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
            return Sent()
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode(errors="replace")
            reason = f"HTTP {exc.code}: {detail}"
            if exc.code in RETRYABLE_STATUS:
                return Retry(reason, _retry_after(exc.headers.get("Retry-After")))
            return Rejected(reason)
        except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections
            return Retry(f"{type(exc).__name__}: {exc}")


def _retry_after(header: str | None) -> float | None:
    try:
        return min(float(header), MAX_BACKOFF_S) if header else None
    except ValueError:
        return None


class Pusher:
    """The background thread: collect every interval, send what waits, back off on failure."""

    def __init__(
        self,
        collect: Callable[[], list[dict[str, Any]]],
        sender: IngestSender,
        flush_interval_s: float,
        max_buffered_samples: int,
        max_batch_samples: int,
        first_backoff_s: float = 1.0,
    ) -> None:
        self.collect = collect
        self.sender = sender
        self.flush_interval_s = flush_interval_s
        self.max_batch_samples = max_batch_samples
        self.first_backoff_s = first_backoff_s
        self.buffer = SampleBuffer(max_buffered_samples)
        self.stats = PusherStats()
        self._backoff_s = first_backoff_s
        self._retry_at = 0.0
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._send_lock = threading.Lock()

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="vigil-client", daemon=True)
            self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread, then collect and send what is left, within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self.collect_now()
        self.send_waiting(deadline, retry=False)

    def collect_now(self) -> None:
        samples = self.collect()
        for start in range(0, len(samples), self.max_batch_samples):
            chunk = samples[start : start + self.max_batch_samples]
            self.buffer.put(Batch(uuid.uuid4().hex, chunk))

    def send_waiting(self, deadline: float | None = None, retry: bool = True) -> None:
        """Send queued batches, oldest first, until one fails or ``deadline`` passes."""
        wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._send_lock.acquire(timeout=wait):
            return  # the thread is still stuck on a receiver that does not answer
        try:
            while deadline is None or time.monotonic() < deadline:
                batch = self.buffer.take()
                if batch is None:
                    return
                outcome = self.sender.send(batch)
                if isinstance(outcome, Sent):
                    self.stats.sent_samples += len(batch.samples)
                    self._recovered()
                elif isinstance(outcome, Rejected):
                    self.stats.rejected_samples += len(batch.samples)
                    log.error(
                        "vigil refused %d samples, dropped: %s", len(batch.samples), outcome.reason
                    )
                else:
                    self.buffer.put(batch, oldest=True)
                    self._failed(outcome, retry)
                    return
        finally:
            self._send_lock.release()

    def _recovered(self) -> None:
        if self._failing:
            log.warning("vigil reachable again at %s", self.sender.endpoint)
        self._failing = False
        self._backoff_s = self.first_backoff_s

    def _failed(self, outcome: Retry, retry: bool) -> None:
        self.stats.failed_attempts += 1
        if not self._failing:
            log.warning(
                "could not push samples to %s (%s); retrying with backoff, keeping at most %d",
                self.sender.endpoint,
                outcome.reason,
                self.buffer.max_samples,
            )
        self._failing = True
        if retry:
            wait = outcome.after_s if outcome.after_s is not None else self._backoff_s
            self._retry_at = time.monotonic() + wait
            self._backoff_s = min(self._backoff_s * 2, MAX_BACKOFF_S)

    def snapshot(self) -> PusherStats:
        self.stats.dropped_samples = self.buffer.dropped
        self.stats.buffered_samples = len(self.buffer)
        return PusherStats(**vars(self.stats))

    def _run(self) -> None:
        next_collect = time.monotonic() + self.flush_interval_s
        while True:
            wake = next_collect
            if len(self.buffer):
                wake = min(wake, self._retry_at)
            if self._stop.wait(max(0.0, wake - time.monotonic())):
                return
            now = time.monotonic()
            if now >= next_collect:
                self._collect_safely()
                next_collect += self.flush_interval_s
                if next_collect < now:
                    next_collect = now + self.flush_interval_s
            if now >= self._retry_at:
                self.send_waiting()

    def _collect_safely(self) -> None:
        try:
            self.collect_now()
        except Exception:  # a bug here must not end the thread: metrics would stop silently
            log.exception("collecting metrics failed")
