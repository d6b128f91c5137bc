"""What health is judged on, gathered in the background: a write probe of the event log,
every stream's size and every durable's progress, the gateway's own disk; and the
watchdog with Vigil's own figures, sent as samples on a timer.

Requests read the latest verdict and never wait on NATS, so ``/health`` answers at
once even when the broker does not, and a write the log would refuse is refused
at once (503) instead of after a client's time-out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from services.gateway.health.liveness import ServiceLiveness
from services.gateway.health.schemas import ConsumerHealthPublic, StreamHealthPublic
from services.gateway.health.verdict import (
    ConsumerFacts,
    HealthLimits,
    Problem,
    SelfFigures,
    StallClock,
    StreamFacts,
    WatchdogTrips,
    consumer_problems,
    disk_problem,
    service_problems,
    stream_problems,
    watchdog_problems,
)
from shared import subjects
from shared.bus import EventBus
from shared.errors import Unavailable
from shared.events import SELF_SOURCE, SamplesIngested, new_id
from shared.faults import disk_state
from shared.settings import Settings
from shared.streams import ALL_STREAMS, stream_named

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 1.0
FACTS_TIMEOUT_S = 2.0


@dataclass
class HealthMonitor:
    settings: Settings
    liveness: ServiceLiveness
    connected: Callable[[], bool]
    limits: HealthLimits = field(init=False)
    streams: list[StreamHealthPublic] = field(default_factory=list)
    consumers: list[ConsumerHealthPublic] = field(default_factory=list)
    probe_error: str | None = None
    refusal: str | None = None
    started_at: float = field(default_factory=time.time)
    stalls: StallClock = field(default_factory=StallClock)
    trips: WatchdogTrips = field(default_factory=WatchdogTrips)
    figures: SelfFigures = field(default_factory=SelfFigures)

    def __post_init__(self) -> None:
        s = self.settings
        self.limits = HealthLimits(
            disk_low_percent=s.disk_low_percent,
            disk_full_percent=s.disk_full_percent,
            stall_after_s=s.stall_after_s,
        )

    # --- what requests read -------------------------------------------------

    def refuse_writes(self) -> None:
        """Raise Unavailable at once when a write could not be stored now."""
        if self.refusal is not None:
            raise Unavailable(self.refusal)

    @property
    def starting(self) -> bool:
        """Services not heard from yet are not called down during start-up."""
        grace = max(15.0, 10 * self.settings.heartbeat_interval_s)
        return time.time() - self.started_at < grace

    def problems(self) -> list[Problem]:
        now = time.time()
        problems: list[Problem] = []
        if not self.connected():
            problems.append(Problem("nats", "failing", "the gateway is not connected to NATS"))
        elif self.probe_error is not None:
            problems.append(
                Problem("event-log", "failing", f"the event log refuses writes: {self.probe_error}")
            )
        statuses = self.liveness.status(now)
        problems += service_problems(statuses, self.limits, now, self.starting)
        problems += consumer_problems(self._consumer_facts(), self.limits)
        problems += stream_problems(self._stream_facts(), self.limits)
        problems += watchdog_problems(self.trips, statuses, now, self._watchdog_after_s())
        return problems

    def _watchdog_after_s(self) -> float:
        return self.limits.stall_after_s + self.settings.watchdog_interval_s

    def _consumer_facts(self) -> list[ConsumerFacts]:
        return [
            ConsumerFacts(c.stream, c.durable, c.pending, c.ack_pending, c.ack_floor, c.stalled_s)
            for c in self.consumers
        ]

    def _stream_facts(self) -> list[StreamFacts]:
        return [
            StreamFacts(s.name, s.bytes, s.max_bytes, stream_named(s.name).keeps_history)
            for s in self.streams
        ]

    # --- gathering ----------------------------------------------------------

    async def watch(self, bus_of: Callable[[], EventBus]) -> None:
        while True:
            await asyncio.gather(self._probe(bus_of), self._gather(bus_of))
            self.refusal = self._refusal()
            await asyncio.sleep(PROBE_INTERVAL_S)

    async def _probe(self, bus_of: Callable[[], EventBus]) -> None:
        """A tiny write to the log: the only sure sign that it stores what it is sent."""
        try:
            bus = bus_of()
            await bus.js.publish(subjects.write_probe("gateway"), b"probe", timeout=PROBE_TIMEOUT_S)
        except Exception as exc:
            if isinstance(exc, TimeoutError):  # nats-py's time-outs are TimeoutErrors too
                reason = f"no answer to a write within {PROBE_TIMEOUT_S:g} s"
            else:
                reason = str(exc) or type(exc).__name__
            if self.probe_error is None:
                log.warning("the event log refuses writes", extra={"error": reason})
            self.probe_error = reason
        else:
            if self.probe_error is not None:
                log.warning("the event log takes writes again")
            self.probe_error = None

    async def _gather(self, bus_of: Callable[[], EventBus]) -> None:
        try:
            streams, consumers = await asyncio.wait_for(
                stream_health(bus_of(), self.stalls), FACTS_TIMEOUT_S
            )
        except Exception as exc:
            log.warning("stream facts unavailable", extra={"error": repr(exc)})
            return
        self.streams, self.consumers = streams, consumers

    def _refusal(self) -> str | None:
        if not self.connected():
            return "the gateway is not connected to NATS"
        if self.probe_error is not None:
            return f"the event log refuses writes: {self.probe_error}"
        disk = disk_state(self.settings.data_dir)
        if disk is not None:
            problem = disk_problem("gateway", disk.as_dict(), self.limits)
            if problem is not None and problem.status == "failing":
                return problem.reason
        return None

    async def send_watchdog(self, bus_of: Callable[[], EventBus]) -> None:
        """The watchdog sample and Vigil's own figures, every ``watchdog_interval_s``."""
        while True:
            await asyncio.sleep(self.settings.watchdog_interval_s)
            now = time.time()
            samples = self.figures.samples(
                now,
                self.liveness.status(now),
                self._consumer_facts(),
                self._stream_facts(),
                self.starting,
            )
            batch = SamplesIngested.of_validated(
                samples, id=new_id(), aggregate_id=SELF_SOURCE, received_at=now
            )
            try:
                await asyncio.wait_for(
                    bus_of().publish(subjects.samples(SELF_SOURCE), batch),
                    self.settings.watchdog_interval_s,
                )
            except Exception as exc:
                log.warning("watchdog not sent", extra={"error": repr(exc)[:200]})
                continue
            self.trips.record(now)


async def stream_health(
    bus: EventBus, stalls: StallClock | None = None
) -> tuple[list[StreamHealthPublic], list[ConsumerHealthPublic]]:
    """Every stream's size and limit, every durable's lag and how long it has stalled."""
    names = [spec.name for spec in ALL_STREAMS]
    infos = await asyncio.gather(*(bus.js.stream_info(name) for name in names))
    consumer_lists = await asyncio.gather(*(bus.js.consumers_info(name) for name in names))
    now = time.time()
    streams = [
        StreamHealthPublic(
            name=name,
            messages=info.state.messages,
            bytes=info.state.bytes,
            max_bytes=info.config.max_bytes or -1,
            first_seq=info.state.first_seq,
            last_seq=info.state.last_seq,
        )
        for name, info in zip(names, infos, strict=True)
    ]
    consumers: list[ConsumerHealthPublic] = []
    for name, found in zip(names, consumer_lists, strict=True):
        for consumer in found:
            durable = consumer.config.durable_name
            if not durable:
                continue  # ephemeral readers (replays) are not part of the system
            pending = consumer.num_pending or 0
            ack_pending = consumer.num_ack_pending or 0
            floor = (consumer.ack_floor.stream_seq if consumer.ack_floor else 0) or 0
            delivered = (consumer.delivered.stream_seq if consumer.delivered else 0) or 0
            stalled = (
                stalls.observe(durable, (floor, delivered), pending > 0, now) if stalls else 0.0
            )
            consumers.append(
                ConsumerHealthPublic(
                    stream=name,
                    durable=durable,
                    pending=pending,
                    ack_pending=ack_pending,
                    redelivered=consumer.num_redelivered or 0,
                    ack_floor=floor,
                    lag=pending + ack_pending,
                    stalled_s=round(stalled, 3),
                )
            )
    consumers.sort(key=lambda c: (c.stream, c.durable))
    return streams, consumers
