"""A ``logging`` handler that ships records to Vigil's log store.

``emit`` only formats the record and appends it to a bounded queue; a background thread
posts batches to ``POST /api/monitoring/logs`` and backs off while Vigil is unreachable
or busy. Past ``max_buffered_lines`` the oldest lines are dropped and counted, so a dead
receiver costs a fixed amount of memory and never slows the application. Records made
while the handler itself is sending (its own warnings) are never shipped, so it cannot
feed itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from vigil_client.labels import LABEL_NAME, printable
from vigil_client.pusher import MAX_BACKOFF_S, Batch, IngestSender, Rejected, Retry, Sent

if TYPE_CHECKING:
    from vigil_client.client import VigilClient

log = logging.getLogger("vigil_client")

LOGS_PATH = "/api/monitoring/logs"
METRICS_PATH = "/api/monitoring/metrics"
# Vigil's limits: per batch, per message, per entry's fields
MAX_BATCH_LINES = 10_000
MAX_BATCH_BYTES = 4 * 1024 * 1024  # under the 5 MB limit, with room for the JSON around
MAX_MESSAGE_BYTES = 32 * 1024
MAX_FIELDS = 64
MAX_FIELD_CHARS = 1024
MAX_FIELDS_BYTES = 8 * 1024
# what a LogRecord holds of its own; everything else on it came from ``extra``
RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
_NOT_IN_MESSAGE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def level_name(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "fatal"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    if levelno >= logging.DEBUG:
        return "debug"
    return "trace"


def _message(text: str) -> str:
    text = _NOT_IN_MESSAGE.sub("\ufffd", text) or "(empty message)"
    encoded = text.encode()
    if len(encoded) > MAX_MESSAGE_BYTES:
        text = encoded[: MAX_MESSAGE_BYTES - 3].decode(errors="ignore") + "…"
    return text


def _field_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    text = value if isinstance(value, str) else repr(value)
    return text[:MAX_FIELD_CHARS]


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """``extra`` values (flat: other values as their repr), then where the record came
    from, as long as they fit Vigil's field limits."""
    fields: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key not in RECORD_ATTRIBUTES and not key.startswith("_") and 0 < len(key) <= 128:
            fields[key] = _field_value(value)
    if record.exc_info and record.exc_info[0] is not None:
        fields["exception"] = record.exc_info[0].__name__
    fields["source"] = f"{record.pathname}:{record.lineno}"
    fields["function"] = record.funcName or ""
    fields["thread"] = record.threadName or ""
    kept: dict[str, Any] = {}
    size = 2
    for key, value in list(fields.items())[:MAX_FIELDS]:
        item = len(json.dumps({key: value}, default=str)) + 1
        if size + item > MAX_FIELDS_BYTES:
            break
        kept[key] = value
        size += item
    return kept


@dataclass
class LogShipperStats:
    sent_lines: int = 0
    dropped_lines: int = 0
    rejected_lines: int = 0
    failed_attempts: int = 0
    buffered_lines: int = 0


class LogShipper:
    """The queue and the thread that posts it: batches of at most ``max_batch_lines``
    lines and ``MAX_BATCH_BYTES``, each with a key so a retried post is stored once."""

    def __init__(
        self,
        sender: IngestSender,
        flush_interval_s: float,
        max_buffered_lines: int,
        max_batch_lines: int,
        first_backoff_s: float,
    ) -> None:
        self.sender = sender
        self.flush_interval_s = flush_interval_s
        self.max_buffered_lines = max_buffered_lines
        self.max_batch_lines = max_batch_lines
        self.first_backoff_s = first_backoff_s
        self.stats = LogShipperStats()
        self.sending = threading.local()
        self._lines: deque[dict[str, Any]] = deque()
        self._retrying: Batch | None = None  # the batch that failed, sent again as it was
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._start_lock = threading.Lock()
        self._backoff_s = first_backoff_s
        self._retry_at = 0.0
        self._failing = False

    def add(self, line: dict[str, Any]) -> None:
        with self._lock:
            self._lines.append(line)
            if len(self._lines) > self.max_buffered_lines:
                self._lines.popleft()
                self.stats.dropped_lines += 1
            full = len(self._lines) >= self.max_batch_lines
        if self._started and (self._thread is None or not self._thread.is_alive()):
            # closed by someone else's logging setup (dictConfig closes every handler,
            # uvicorn calls it), or a forked child: a handler still in use goes on working
            self.start()
        if full:
            self._wake.set()

    def start(self) -> None:
        with self._start_lock:
            self._started = True
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="vigil-logs", daemon=True)
                self._thread.start()

    def stop(self, timeout_s: float) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def snapshot(self) -> LogShipperStats:
        with self._lock:
            waiting = len(self._lines) + (len(self._retrying.samples) if self._retrying else 0)
            return LogShipperStats(**{**vars(self.stats), "buffered_lines": waiting})

    def _next_batch(self) -> Batch | None:
        with self._lock:
            if self._retrying is not None:
                batch, self._retrying = self._retrying, None
                return batch
            lines: list[dict[str, Any]] = []
            size = 2
            while self._lines and len(lines) < self.max_batch_lines:
                item = len(json.dumps(self._lines[0], default=str)) + 1
                if lines and size + item > MAX_BATCH_BYTES:
                    break
                lines.append(self._lines.popleft())
                size += item
        return Batch(uuid.uuid4().hex, lines) if lines else None

    def send_waiting(self, deadline: float | None = None, retry: bool = True) -> bool:
        """Send batches until none waits (True), one fails, or ``deadline`` passes."""
        wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._send_lock.acquire(timeout=wait):
            return False
        self.sending.active = True
        try:
            while deadline is None or time.monotonic() < deadline:
                batch = self._next_batch()
                if batch is None:
                    return True
                outcome = self.sender.send(batch)
                if isinstance(outcome, Sent):
                    self.stats.sent_lines += len(batch.samples)
                    if self._failing:
                        log.warning("vigil reachable again at %s", self.sender.endpoint)
                    self._failing = False
                    self._backoff_s = self.first_backoff_s
                elif isinstance(outcome, Rejected):
                    self.stats.rejected_lines += len(batch.samples)
                    log.error(
                        "vigil refused %d log lines, dropped: %s",
                        len(batch.samples),
                        outcome.reason,
                    )
                else:
                    with self._lock:
                        self._retrying = batch
                    self._failed(outcome, retry)
                    return False
            return False
        finally:
            self.sending.active = False
            self._send_lock.release()

    def _failed(self, outcome: Retry, retry: bool) -> None:
        self.stats.failed_attempts += 1
        if not self._failing:
            log.warning(
                "could not send log lines to %s (%s); retrying with backoff, keeping at most %d",
                self.sender.endpoint,
                outcome.reason,
                self.max_buffered_lines,
            )
        self._failing = True
        if retry:
            wait = outcome.after_s if outcome.after_s is not None else self._backoff_s
            self._retry_at = time.monotonic() + wait
            self._backoff_s = min(self._backoff_s * 2, MAX_BACKOFF_S)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            wait = self.flush_interval_s
            if self._failing:
                wait = max(0.0, self._retry_at - now)
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set():
                return
            if time.monotonic() >= self._retry_at:
                try:
                    self.send_waiting()
                except Exception:  # a bug here must not end the thread: logs would stop
                    self.sending.active = True
                    try:
                        log.exception("sending log lines failed")
                    finally:
                        self.sending.active = False


class VigilLogHandler(logging.Handler):
    """Sends log records to Vigil, batched, in the background.

    Takes Vigil's URL, ingest key, labels (and ``instance``) and ``service`` from
    ``client`` (by default the process's default client), or from ``url``/``ingest_key``
    (``VIGIL_URL``, ``VIGIL_INGEST_KEY``) and ``service`` (``VIGIL_SERVICE``). Each line
    carries the record's level, formatted message (with the traceback), time, the
    logger's name as the ``logger`` label, and ``extra`` values as fields.
    """

    def __init__(
        self,
        url: str | None = None,
        ingest_key: str | None = None,
        *,
        client: VigilClient | None = None,
        service: str | None = None,
        labels: Mapping[str, str] | None = None,
        level: int = logging.NOTSET,
        flush_interval_s: float = 2.0,
        max_buffered_lines: int = 10_000,
        max_batch_lines: int = 1_000,
        timeout_s: float = 5.0,
        retry_backoff_s: float = 1.0,
        start: bool = True,
    ) -> None:
        super().__init__(level)
        if client is None and url is None and ingest_key is None:
            from vigil_client.defaults import default_client

            client = default_client()
        base_labels: dict[str, str] = {}
        if client is not None:
            endpoint = client.endpoint.removesuffix(METRICS_PATH) + LOGS_PATH
            key = client.pusher.sender.ingest_key
            base_labels = client._labels()
            service = service if service is not None else client.service
        else:
            endpoint = _endpoint(url if url is not None else os.environ.get("VIGIL_URL", ""))
            key = ingest_key if ingest_key is not None else os.environ.get("VIGIL_INGEST_KEY", "")
            if service is None:
                service = os.environ.get("VIGIL_SERVICE", "")
        if not key:
            raise ValueError("ingest_key: required (or set VIGIL_INGEST_KEY)")
        for name, value in {"flush_interval_s": flush_interval_s, "timeout_s": timeout_s}.items():
            if not value > 0:
                raise ValueError(f"{name}: must be positive, not {value!r}")
        if not retry_backoff_s > 0 or not max_buffered_lines > 0:
            raise ValueError("retry_backoff_s and max_buffered_lines: must be positive")
        if not 1 <= max_batch_lines <= MAX_BATCH_LINES:
            raise ValueError(f"max_batch_lines: must be between 1 and {MAX_BATCH_LINES}")
        for name in labels or {}:
            if not LABEL_NAME.match(name):
                raise ValueError(f"labels[{name!r}]: not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        self.service = printable(service or "")
        self.labels = {**base_labels, **{k: printable(str(v)) for k, v in (labels or {}).items()}}
        self.setFormatter(logging.Formatter("%(message)s"))
        self.shipper = LogShipper(
            IngestSender(endpoint, key, timeout_s),
            flush_interval_s,
            max_buffered_lines,
            max_batch_lines,
            retry_backoff_s,
        )
        if start:
            self.shipper.start()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self.shipper.sending, "active", False):
            return  # made while sending (the shipper's own warnings): never shipped
        try:
            line: dict[str, Any] = {
                "message": _message(self.format(record)),
                "timestamp": record.created,
                "level": level_name(record.levelno),
                "labels": {**self.labels, "logger": printable(record.name)},
                "fields": record_fields(record),
            }
            if self.service:
                line["service"] = self.service
            self.shipper.add(line)
        except Exception:
            self.handleError(record)

    def flush(self, timeout_s: float = 5.0) -> None:
        """Send what waits now, within ``timeout_s`` (no retry when Vigil fails)."""
        self.shipper.send_waiting(time.monotonic() + timeout_s, retry=False)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread and send what is left, within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        self.shipper.stop(max(0.0, deadline - time.monotonic()))
        self.shipper.send_waiting(deadline, retry=False)
        super().close()

    def stats(self) -> LogShipperStats:
        """Lines sent, dropped (queue full), refused by Vigil, and waiting."""
        return self.shipper.snapshot()


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"url: {url!r} is not an http(s) URL of Vigil (or set VIGIL_URL)")
    base = url.rstrip("/")
    return base if base.endswith(LOGS_PATH) else base + LOGS_PATH
