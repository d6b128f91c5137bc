"""Vigil's own log records into its log store (``VIGIL_SELF_LOGS=1``), so an operator
searches Vigil's logs in Vigil.

A process-wide handler on the root logger turns each record of INFO and up into a log
line and queues it for the service the record came from (the service whose runtime the
logging task or thread descends from; the only one when a process runs one service). A
task of that service's runtime publishes the queue every second as one ``LogsIngested``
on ``logs.entries.self``, ``service`` the service's name.

Bounded and never recursive: at most ``RATE_PER_S`` lines a second (bursts of
``BURST``) and ``MAX_QUEUED`` waiting, the rest counted and reported in one line when
shipping resumes; records made while publishing (the NATS client's own complaints
included) and this module's own are never queued, and a failed publish is counted (its
lines reported as dropped), not logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from shared import subjects
from shared.events import LogEntry, LogsIngested, new_id
from shared.events.logs import MAX_FIELDS_BYTES, MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

SOURCE = "self"
RATE_PER_S = 50.0
BURST = 500.0
MAX_QUEUED = 5_000
MAX_BATCH = 1_000
SHIP_EVERY_S = 1.0
PUBLISH_TIMEOUT_S = 2.0
MAX_FIELD_CHARS = 1024
MAX_FIELDS = 32

# the service whose runtime started the current task or thread
CURRENT_SERVICE: ContextVar[str | None] = ContextVar("vigil_current_service", default=None)
_PUBLISHING: ContextVar[bool] = ContextVar("vigil_self_logs_publishing", default=False)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_NOT_IN_MESSAGE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ENTRY = TypeAdapter(LogEntry)
_FORMAT = logging.Formatter("%(message)s")


def level_of(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "fatal"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    return "info"


def _field(value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    text = value if isinstance(value, str) else repr(value)
    return _NOT_IN_MESSAGE.sub("\ufffd", text)[:MAX_FIELD_CHARS]


def entry_of(record: logging.LogRecord, service: str, instance: str) -> dict[str, Any]:
    """A record as a log line: message with its traceback, level, time, logger, extras."""
    text = _NOT_IN_MESSAGE.sub("\ufffd", _FORMAT.format(record)) or "(empty message)"
    encoded = text.encode()
    if len(encoded) > MAX_MESSAGE_BYTES:
        text = encoded[: MAX_MESSAGE_BYTES - 3].decode(errors="ignore") + "…"
    fields: dict[str, Any] = {}
    size = 2
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_") or not 0 < len(key) <= 128:
            continue
        item = _field(value)
        size += len(orjson.dumps({key: item})) + 1
        if size > MAX_FIELDS_BYTES or len(fields) >= MAX_FIELDS:
            break
        fields[key] = item
    return {
        "message": text,
        "timestamp": record.created,
        "level": level_of(record.levelno),
        "service": service,
        "labels": {"logger": record.name[:200], "instance": instance},
        "fields": fields,
    }


@dataclass
class SelfLogQueue:
    """One service's lines waiting to be published, rate-limited and bounded."""

    service: str
    instance: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    lines: deque[dict[str, Any]] = field(default_factory=deque)
    suppressed: int = 0  # over the rate
    dropped: int = 0  # queue full, not published, or the line did not validate
    failed_publishes: int = 0
    shipped: int = 0
    tokens: float = BURST
    refilled: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: logging.LogRecord) -> None:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(BURST, self.tokens + (now - self.refilled) * RATE_PER_S)
            self.refilled = now
            if self.tokens < 1.0:
                self.suppressed += 1
                return
            self.tokens -= 1.0
        line = entry_of(record, self.service, self.instance)
        with self.lock:
            self.lines.append(line)
            if len(self.lines) > MAX_QUEUED:
                self.lines.popleft()
                self.dropped += 1

    def take(self) -> list[LogEntry]:
        """Up to ``MAX_BATCH`` valid lines, with a line counting what was not shipped."""
        with self.lock:
            raw = [self.lines.popleft() for _ in range(min(MAX_BATCH, len(self.lines)))]
            missed, self.suppressed = self.suppressed, 0
            dropped, self.dropped = self.dropped, 0
        entries: list[LogEntry] = []
        for line in raw:
            try:
                entries.append(_ENTRY.validate_python(line))
            except ValidationError:
                dropped += 1
        if missed or dropped:
            summary = {
                "message": f"{missed + dropped} log lines of {self.service} were not shipped "
                f"({missed} over {RATE_PER_S:g} a second, {dropped} dropped: the queue was full "
                "or the event log did not take them)",
                "timestamp": time.time(),
                "level": "warn",
                "service": self.service,
                "labels": {"logger": __name__, "instance": self.instance},
                "fields": {"suppressed": missed, "dropped": dropped},
            }
            entries.append(_ENTRY.validate_python(summary))
        return entries

    def lose(self, lines: int) -> None:
        with self.lock:
            self.failed_publishes += 1
            self.dropped += lines

    def __len__(self) -> int:
        return len(self.lines)


class SelfLogHandler(logging.Handler):
    """The process's one handler: each record goes to its service's queue."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.queues: dict[str, SelfLogQueue] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if _PUBLISHING.get() or record.name == __name__:
            return
        try:
            service = CURRENT_SERVICE.get()
            queue = self.queues.get(service) if service is not None else None
            if queue is None:
                if len(self.queues) != 1:
                    return  # several services in one process, and none started this work
                queue = next(iter(self.queues.values()))
            queue.add(record)
        except Exception:
            self.handleError(record)


_handler: SelfLogHandler | None = None
_handler_lock = threading.Lock()


def install(service: str) -> SelfLogQueue:
    """Queue ``service``'s records from now on (the handler goes on the root logger once)."""
    global _handler
    with _handler_lock:
        if _handler is None:
            _handler = SelfLogHandler()
        root = logging.getLogger()
        if _handler not in root.handlers:
            root.addHandler(_handler)
        queue = _handler.queues.get(service)
        if queue is None:
            queue = _handler.queues[service] = SelfLogQueue(service)
        return queue


def uninstall(service: str) -> None:
    global _handler
    with _handler_lock:
        if _handler is None:
            return
        _handler.queues.pop(service, None)
        if not _handler.queues:
            logging.getLogger().removeHandler(_handler)
            _handler = None


async def ship(queue: SelfLogQueue, publish: Callable[[str, LogsIngested], Any]) -> int:
    """Publish what waits, one batch at a time; the lines published."""
    sent = 0
    token = _PUBLISHING.set(True)
    try:
        while True:
            entries = queue.take()
            if not entries:
                return sent
            event = LogsIngested.of_validated(
                entries, id=new_id(), aggregate_id=SOURCE, received_at=time.time()
            )
            try:
                await asyncio.wait_for(
                    publish(subjects.log_entries(SOURCE), event), PUBLISH_TIMEOUT_S
                )
            except Exception:
                # never logged (it would only queue more): counted, and reported with
                # the next batch that gets through
                queue.lose(sum(1 for e in entries if e["fields"].get("suppressed") is None))
                return sent
            sent += len(entries)
            queue.shipped += len(entries)
    finally:
        _PUBLISHING.reset(token)


async def ship_forever(
    queue: SelfLogQueue, publish: Callable[[str, LogsIngested], Any], every_s: float = SHIP_EVERY_S
) -> None:
    try:
        while True:
            await asyncio.sleep(every_s)
            await ship(queue, publish)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(ship(queue, publish))
