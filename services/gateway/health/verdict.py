"""How healthy Vigil is, judged from what the gateway gathers; free of I/O.

"failing" means pages may not go out (the event log refuses writes, the evaluator or
the notifier is down or stalled, a disk is full); "degraded" means something needs an
operator but paging still works. Every problem names its component and its cause.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from services.gateway.health.liveness import ServiceStatus
from shared.durables import role_of
from shared.events import WATCHDOG_METRIC, Sample
from shared.faults import CHANNEL_FAULT_PREFIX

Level = Literal["ok", "degraded", "failing"]
ProblemLevel = Literal["degraded", "failing"]

PAGING_PATH = frozenset({"alerts", "notifier"})  # without these nothing pages
MB = 1024 * 1024


@dataclass(frozen=True)
class Problem:
    component: str
    status: ProblemLevel
    reason: str


@dataclass(frozen=True)
class HealthLimits:
    disk_low_percent: float = 10.0
    disk_full_percent: float = 2.0
    stall_after_s: float = 30.0
    stream_full_percent: float = 90.0


@dataclass(frozen=True)
class ConsumerFacts:
    stream: str
    durable: str
    pending: int
    ack_pending: int
    ack_floor: int
    stalled_s: float

    @property
    def lag(self) -> int:
        return self.pending + self.ack_pending


@dataclass(frozen=True)
class StreamFacts:
    name: str
    bytes: int
    max_bytes: int
    # at its limit the stream refuses writes (event-sourced), rather than dropping its
    # oldest messages (METRICS, DEADLETTERS, WATCHDOG, which sit at their limit by design)
    refuses_when_full: bool = True

    @property
    def used_percent(self) -> float | None:
        return 100.0 * self.bytes / self.max_bytes if self.max_bytes > 0 else None


def overall(problems: Iterable[Problem]) -> Level:
    levels = {p.status for p in problems}
    return "failing" if "failing" in levels else "degraded" if levels else "ok"


def disk_problem(service: str, disk: dict[str, Any], limits: HealthLimits) -> Problem | None:
    path = disk.get("path", "?")
    if not disk.get("writable", True):
        return Problem(f"disk:{service}", "failing", f"the data dir {path} is read-only")
    total = int(disk.get("total_bytes") or 0)
    free = int(disk.get("free_bytes") or 0)
    if total <= 0:
        return None
    percent = 100.0 * free / total
    if percent < limits.disk_full_percent:
        return Problem(
            f"disk:{service}",
            "failing",
            f"the disk under {path} is full: {free / MB:.1f} MB ({percent:.1f} %) free",
        )
    if percent < limits.disk_low_percent:
        return Problem(
            f"disk:{service}",
            "degraded",
            f"the disk under {path} is nearly full: {free / MB:.0f} MB ({percent:.1f} %) free",
        )
    return None


def service_problems(
    statuses: Iterable[ServiceStatus], limits: HealthLimits, now: float, starting: bool
) -> list[Problem]:
    """Down services, faults they report, their disks. While ``starting``, a service
    never heard from is not yet counted as down."""
    problems: list[Problem] = []
    for status in statuses:
        name = status.service
        on_path = name in PAGING_PATH
        if not status.up:
            if status.last_seen is None and starting:
                continue
            since = (
                "never heard from"
                if status.last_seen is None
                else f"no heartbeat for {now - status.last_seen:.0f} s"
            )
            level: ProblemLevel = "failing" if on_path else "degraded"
            problems.append(Problem(f"service:{name}", level, f"{name} is down: {since}"))
            continue
        for component, reason in sorted(status.faults.items()):
            if component.startswith(CHANNEL_FAULT_PREFIX):
                channel = component.removeprefix(CHANNEL_FAULT_PREFIX)
                problems.append(
                    Problem(
                        f"channel:{channel}", "degraded", f"channel {channel} failing: {reason}"
                    )
                )
                continue
            level = "failing" if on_path else "degraded"
            problems.append(Problem(f"{name}:{component}", level, f"{component}: {reason}"))
        disk = status.report.get("disk")
        if isinstance(disk, dict) and (problem := disk_problem(name, disk, limits)):
            problems.append(problem)
        if status.restarts >= 3:
            problems.append(
                Problem(
                    f"service:{name}",
                    "degraded",
                    f"{name} restarted {status.restarts} times in the last 15 minutes",
                )
            )
    return problems


def consumer_problems(consumers: Iterable[ConsumerFacts], limits: HealthLimits) -> list[Problem]:
    problems: list[Problem] = []
    for consumer in consumers:
        if consumer.stalled_s < limits.stall_after_s:
            continue
        role = role_of(consumer.durable)
        level: ProblemLevel = "failing" if role in ("evaluation", "delivery") else "degraded"
        problems.append(
            Problem(
                f"consumer:{consumer.durable}",
                level,
                f"{role} stalled: {consumer.durable} has {consumer.pending} messages waiting "
                f"and made no progress for {consumer.stalled_s:.0f} s",
            )
        )
    return problems


def stream_problems(streams: Iterable[StreamFacts], limits: HealthLimits) -> list[Problem]:
    return [
        Problem(
            f"stream:{s.name}",
            "degraded",
            f"stream {s.name} holds {s.used_percent:.0f} % of its {s.max_bytes / MB:.0f} MB limit",
        )
        for s in streams
        if s.refuses_when_full
        and s.used_percent is not None
        and s.used_percent >= limits.stream_full_percent
    ]


class StallClock:
    """When each durable consumer last made progress while it had work waiting.

    Progress is a move of the acknowledged floor or of the last delivered message.
    Only messages not yet handed out count as waiting: a notifier message being
    retried for a failing channel is that channel's problem, not a stall.
    """

    def __init__(self) -> None:
        self._since: dict[str, tuple[tuple[int, int], float]] = {}

    def observe(self, durable: str, marks: tuple[int, int], waiting: bool, now: float) -> float:
        seen = self._since.get(durable)
        if seen is None or seen[0] != marks or not waiting:
            self._since[durable] = (marks, now)
            return 0.0
        return now - seen[1]


class WatchdogTrips:
    """Watchdog samples the gateway sent, to tell which stage stopped confirming them."""

    KEEP = 256

    def __init__(self) -> None:
        self.sent: deque[float] = deque(maxlen=self.KEEP)

    def record(self, sent_at: float) -> None:
        self.sent.append(sent_at)

    def overdue(self, confirmed: Any, now: float, after_s: float) -> float | None:
        """Age of the oldest watchdog sent but not confirmed, if older than ``after_s``."""
        done = float(confirmed) if isinstance(confirmed, int | float) else float("-inf")
        for sent_at in self.sent:
            if sent_at > done + 1e-6 and now - sent_at > after_s:
                return now - sent_at
        return None


def watchdog_problems(
    trips: WatchdogTrips, statuses: Iterable[ServiceStatus], now: float, after_s: float
) -> list[Problem]:
    """A stage that is up but has not passed a watchdog on in time is stalled."""
    problems: list[Problem] = []
    stages = {
        "alerts": ("watchdog_evaluated", "evaluation"),
        "notifier": ("watchdog_delivered", "delivery"),
    }
    for status in statuses:
        if status.service not in stages or not status.up:
            continue
        field, role = stages[status.service]
        age = trips.overdue(status.report.get(field), now, after_s)
        if age is not None:
            problems.append(
                Problem(
                    f"watchdog:{role}",
                    "failing",
                    f"{role} stalled: the watchdog sample sent {age:.0f} s ago has not "
                    f"passed {status.service}",
                )
            )
    return problems


@dataclass
class SelfFigures:
    """Vigil's own figures as samples, so its own rules page through its own channels.

    Remembers the channels seen failing, so a recovered channel reports 0 and its
    alert resolves.
    """

    channels: set[str] = field(default_factory=set)

    def samples(
        self,
        now: float,
        statuses: Iterable[ServiceStatus],
        consumers: Iterable[ConsumerFacts],
        streams: Iterable[StreamFacts],
        starting: bool,
    ) -> list[Sample]:
        out: list[Sample] = [_sample(WATCHDOG_METRIC, now, {})]
        failing: set[str] = set()
        for status in statuses:
            service = {"service": status.service}
            if status.up or not (status.last_seen is None and starting):
                out.append(_sample("vigil_service_down", 0.0 if status.up else 1.0, service))
            out.append(_sample("vigil_service_restarts", float(status.restarts), service))
            disk = status.report.get("disk")
            if isinstance(disk, dict) and disk.get("total_bytes"):
                percent = 100.0 * float(disk.get("free_bytes") or 0) / float(disk["total_bytes"])
                out.append(_sample("vigil_data_dir_free_percent", round(percent, 3), service))
            for component in status.faults:
                if component.startswith(CHANNEL_FAULT_PREFIX):
                    failing.add(component.removeprefix(CHANNEL_FAULT_PREFIX))
        self.channels |= failing
        for channel in sorted(self.channels):
            value = 1.0 if channel in failing else 0.0
            out.append(_sample("vigil_channel_failing", value, {"channel": channel}))
        for consumer in consumers:
            labels = {"consumer": consumer.durable}
            out.append(_sample("vigil_consumer_lag", float(consumer.lag), labels))
            out.append(
                _sample("vigil_consumer_stalled_seconds", round(consumer.stalled_s, 3), labels)
            )
        for stream in streams:
            if stream.refuses_when_full and stream.used_percent is not None:
                out.append(
                    _sample(
                        "vigil_stream_used_percent",
                        round(stream.used_percent, 3),
                        {"stream": stream.name},
                    )
                )
        return out


def _sample(name: str, value: float, labels: dict[str, str]) -> Sample:
    return {"name": name, "value": value, "timestamp": None, "labels": labels}
