"""Faults of a process's surroundings (disk, database, broker), and how a process reports them.

A full disk, a read-only mount or an unreachable broker is not the fault of the message
being handled: retrying later will succeed once the operator mends it, and dead-lettering
would throw good messages away. Such errors are told apart here, retried without end,
and announced in the service's heartbeat so health and alerts can say it loudly.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
import sqlalchemy.exc

from shared.errors import StreamFull, VigilError

STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO, errno.EACCES}
# JetStream API error codes that mean "the server cannot store this now"
JETSTREAM_STORAGE_CODES = {10023, 10047, 10077, 10076}
SQL_STORAGE_WORDS = (
    "disk is full",
    "readonly database",
    "read-only",
    "disk i/o error",
    "unable to open database",
    "no space left",
    "could not extend file",
)


def environmental_cause(exc: BaseException) -> str | None:
    """Why ``exc`` is the surroundings' fault, or None if it may be the message's.

    A domain error (a channel's delivery failure, say) has been judged already, by
    code that knows what it means: its causes are not looked at again.
    """
    if isinstance(exc, StreamFull):
        return f"event log refuses writes: {exc.message}"
    if isinstance(exc, VigilError):
        return None
    for error in _chain(exc):
        if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
            return f"storage: {os.strerror(error.errno or 0)}"
        if isinstance(error, nats.js.errors.APIError):
            if error.code == 503 or error.err_code in JETSTREAM_STORAGE_CODES:
                return f"event log refuses writes: {error.description or error}"
            continue
        if isinstance(
            error,
            nats.errors.TimeoutError
            | nats.errors.NoRespondersError
            | nats.errors.ConnectionClosedError
            | nats.errors.ConnectionReconnectingError
            | nats.errors.OutboundBufferLimitError,
        ):
            return f"event log not answering: {type(error).__name__}"
        if isinstance(error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            text = str(error.orig or error).lower()
            if any(word in text for word in SQL_STORAGE_WORDS):
                return f"database storage: {str(error.orig or error).splitlines()[0][:200]}"
            if error.connection_invalidated or "connection" in text:
                return f"database unreachable: {str(error.orig or error).splitlines()[0][:200]}"
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


CHANNEL_FAULT_PREFIX = "channel:"


def channel_fault(channel: str) -> str:
    """A notification channel's name on the fault board."""
    return f"{CHANNEL_FAULT_PREFIX}{channel}"


class FaultBoard:
    """What is wrong in this process right now, by component; travels in the heartbeat."""

    def __init__(self) -> None:
        self._faults: dict[str, str] = {}

    def report(self, component: str, reason: str) -> None:
        self._faults[component] = reason[:300]

    def clear(self, component: str) -> None:
        self._faults.pop(component, None)

    def snapshot(self) -> dict[str, str]:
        return dict(self._faults)


@dataclass(frozen=True)
class DiskState:
    path: str
    free_bytes: int
    total_bytes: int
    writable: bool

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free_bytes / self.total_bytes if self.total_bytes else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "free_bytes": self.free_bytes,
            "total_bytes": self.total_bytes,
            "writable": self.writable,
        }


def disk_state(path: Path) -> DiskState | None:
    """Free space of the file system holding ``path``, and whether it takes writes."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    read_only = bool(stat.f_flag & os.ST_RDONLY)
    return DiskState(
        path=str(path),
        free_bytes=stat.f_bavail * stat.f_frsize,
        total_bytes=stat.f_blocks * stat.f_frsize,
        writable=not read_only and os.access(path, os.W_OK),
    )
