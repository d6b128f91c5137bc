"""What the HTTP app and the consumers share inside one gateway process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.health.liveness import ServiceLiveness
from services.gateway.health.monitor import HealthMonitor
from services.gateway.live.stream import KEEPALIVE_S, LiveStream
from services.gateway.logs.backpressure import LogBackpressure
from services.gateway.logs.tail import LogTails
from services.gateway.metrics.backpressure import IngestBackpressure
from shared.bus import EventBus
from shared.db import ProjectionStore
from shared.errors import Unavailable
from shared.settings import Settings

CONSISTENCY_WAIT_S = 2.0
STORE_POLL_S = 0.1


class ProjectionProgress:
    """How far each projection has got, so a command can wait for its own write to show.

    Events applied in this process wake waiters at once; the stored checkpoint is also
    polled, because with a shared database another gateway replica may apply it.
    """

    def __init__(self, store: ProjectionStore):
        self.store = store
        self.applied: dict[str, int] = {}
        self._tick = asyncio.Event()

    def advance(self, projection: str, seq: int) -> None:
        if seq > self.applied.get(projection, 0):
            self.applied[projection] = seq
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    async def wait_for(self, projection: str, seq: int, within_s: float) -> bool:
        """True once ``projection`` has applied ``seq``; False if ``within_s`` passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while self.applied.get(projection, 0) < seq:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            tick = self._tick
            try:
                await asyncio.wait_for(tick.wait(), min(remaining, STORE_POLL_S))
            except TimeoutError:
                stored = await self.store.last_seq(projection)
                if stored >= seq:
                    self.applied[projection] = max(stored, self.applied.get(projection, 0))
        return True


@dataclass
class GatewayState:
    settings: Settings
    store: ProjectionStore
    bus_of: Callable[[], EventBus]
    live: LiveStream = field(default_factory=LiveStream)
    log_tails: LogTails = field(default_factory=LogTails)
    liveness: ServiceLiveness = field(init=False)
    progress: ProjectionProgress = field(init=False)
    ingest: IngestBackpressure = field(init=False)
    log_ingest: IngestBackpressure = field(init=False)
    health: HealthMonitor = field(init=False)
    keepalive_s: float = KEEPALIVE_S
    consistency_wait_s: float = CONSISTENCY_WAIT_S
    # the read model a command's stream shows up in, filled as sections are included
    projection_by_stream: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.liveness = ServiceLiveness(self.settings.heartbeat_interval_s)
        self.progress = ProjectionProgress(self.store)
        self.ingest = IngestBackpressure(self.settings.ingest_max_backlog, self.liveness)
        self.log_ingest = LogBackpressure(self.settings.ingest_max_backlog, self.liveness)
        self.health = HealthMonitor(self.settings, self.liveness, lambda: self.connected)

    def bus(self) -> EventBus:
        bus: EventBus | None = None
        with contextlib.suppress(RuntimeError):
            bus = self.bus_of()
        if bus is None or not bus.nc.is_connected:
            raise Unavailable("the gateway is not connected to NATS")
        return bus

    @property
    def connected(self) -> bool:
        try:
            return self.bus_of().nc.is_connected
        except RuntimeError:
            return False


async def get_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


StateDep = Annotated[GatewayState, Depends(get_state)]


async def get_engine(state: StateDep) -> AsyncEngine:
    return state.store.engine


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
