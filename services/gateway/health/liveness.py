"""When a service counts as up: the last heartbeat of each, kept in bounded shapes."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from nats.aio.msg import Msg

from shared.services import SERVICES

log = logging.getLogger(__name__)

MISSED_BEATS_BEFORE_DOWN = 3
RESTART_WINDOW_S = 900.0  # restarts counted over the last 15 minutes


@dataclass(frozen=True)
class Heartbeat:
    service: str
    host: str
    pid: int
    uptime_s: float
    seen_at: float
    started_at: float = 0.0
    report: dict[str, Any] = field(default_factory=dict)  # faults, disk, added figures


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    up: bool
    last_seen: float | None
    host: str | None
    pid: int | None
    uptime_s: float | None
    restarts: int = 0  # within RESTART_WINDOW_S
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def faults(self) -> dict[str, str]:
        faults = self.report.get("faults")
        return faults if isinstance(faults, dict) else {}


class ServiceLiveness:
    """The last heartbeat of each service; a service is down after three missed beats.

    A beat from a new process (another pid or start time) counts as a restart.
    """

    def __init__(self, interval_s: float, expected: tuple[str, ...] = SERVICES):
        self.interval_s = interval_s
        self.expected = expected
        self.last: dict[str, Heartbeat] = {}
        self.restarts: dict[str, deque[float]] = {}

    def record(self, payload: dict[str, Any], seen_at: float) -> Heartbeat | None:
        try:
            sent_at = float(payload.get("time", seen_at))
            started_at = float(payload.get("started_at", sent_at))
            beat = Heartbeat(
                service=str(payload["service"]),
                host=str(payload.get("host", "")),
                pid=int(payload.get("pid", 0)),
                uptime_s=max(0.0, sent_at - started_at),
                seen_at=seen_at,
                started_at=started_at,
                report=bounded_report(payload),
            )
        except (KeyError, TypeError, ValueError):
            return None
        previous = self.last.get(beat.service)
        unknown = previous is None and beat.service not in self.expected
        extra = sum(1 for name in self.last if name not in self.expected)
        if unknown and extra >= MAX_EXTRA_SERVICES:
            return None  # a flood of made-up names must not grow health without end
        if previous is not None and (previous.pid, previous.started_at) != (
            beat.pid,
            beat.started_at,
        ):
            self.restarts.setdefault(beat.service, deque(maxlen=1000)).append(seen_at)
        self.last[beat.service] = beat
        return beat

    def status(self, now: float) -> list[ServiceStatus]:
        names = list(self.expected) + sorted(set(self.last) - set(self.expected))
        return [self._status_of(name, now) for name in names]

    def _status_of(self, name: str, now: float) -> ServiceStatus:
        beat = self.last.get(name)
        restarts = sum(1 for t in self.restarts.get(name, ()) if now - t <= RESTART_WINDOW_S)
        if beat is None:
            return ServiceStatus(name, False, None, None, None, None, restarts)
        up = now - beat.seen_at <= MISSED_BEATS_BEFORE_DOWN * self.interval_s
        return ServiceStatus(
            service=name,
            up=up,
            last_seen=beat.seen_at,
            host=beat.host,
            pid=beat.pid,
            uptime_s=beat.uptime_s + (now - beat.seen_at) if up else None,
            restarts=restarts,
            report=beat.report if up else {},
        )


MAX_EXTRA_SERVICES = 32  # replicas or helpers beyond the six, remembered at most
MAX_REPORTED_FAULTS = 32
MAX_REASON_CHARS = 300
_DISK_FIELDS = {"path": str, "free_bytes": int, "total_bytes": int, "writable": bool}
_WATCHDOG_FIELDS = ("watchdog_evaluated", "watchdog_delivered", "deadman_pinged_at")


def bounded_report(payload: dict[str, Any]) -> dict[str, Any]:
    """What a heartbeat reports, kept only in the shapes health reads and in bounded size:
    anyone on the bus can send a beat, and /health must not echo whatever it says."""
    report: dict[str, Any] = {}
    faults = payload.get("faults")
    if isinstance(faults, dict):
        report["faults"] = {
            str(k)[:100]: str(v)[:MAX_REASON_CHARS]
            for k, v in list(faults.items())[:MAX_REPORTED_FAULTS]
        }
    disk = payload.get("disk")
    if isinstance(disk, dict) and all(isinstance(disk.get(k), t) for k, t in _DISK_FIELDS.items()):
        report["disk"] = {k: disk[k] for k in _DISK_FIELDS} | {"path": disk["path"][:300]}
    database = payload.get("database")
    if isinstance(database, dict) and isinstance(database.get("ok"), bool):
        report["database"] = {
            "ok": database["ok"],
            "detail": str(database.get("detail", ""))[:MAX_REASON_CHARS],
        }
    for name in _WATCHDOG_FIELDS:
        value = payload.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            report[name] = float(value)
    return report


def heartbeat_listener(liveness: ServiceLiveness) -> Callable[[Msg], Awaitable[None]]:
    """Feeds every heartbeat on core NATS into ``liveness``."""

    async def on_heartbeat(msg: Msg) -> None:
        try:
            payload = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            log.warning("ignored a heartbeat that is not JSON", extra={"subject": msg.subject})
            return
        if isinstance(payload, dict):
            liveness.record(payload, time.time())

    return on_heartbeat
