"""Refusing samples while the services that store and evaluate them are behind.

Accepting faster than the metrics store and the alerts evaluator can keep up only
grows their backlog, and a critical sample then waits behind it before it can
page. So while a running service's consumer on METRICS is more than
``max_backlog`` batches behind, POST /metrics answers 429 with Retry-After. A
service that is down does not count: the log keeps what it has not read, and
ingest goes on. Neither does a forwarder to another system (role ``forwarding``): a
remote store that is away must not stop Vigil taking samples; the stream's window bounds
how far it may fall behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from services.gateway.health.liveness import ServiceLiveness
from shared.bus import EventBus
from shared.durables import owner_of, role_of
from shared.errors import Overloaded
from shared.streams import METRICS

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.25
RETRY_AFTER_S = 1.0


@dataclass
class IngestBackpressure:
    max_backlog: int
    liveness: ServiceLiveness
    backlog: dict[str, int] = field(default_factory=dict)  # durable -> batches behind

    def check(self) -> None:
        """Raise Overloaded when a running service is too far behind to take more."""
        if self.max_backlog <= 0:
            return
        up = {s.service for s in self.liveness.status(time.time()) if s.up}
        for durable, behind in self.backlog.items():
            if (
                behind > self.max_backlog
                and owner_of(durable) in up
                and role_of(durable) != "forwarding"
            ):
                raise Overloaded(
                    f"{durable} is {behind} batches behind (limit {self.max_backlog}); "
                    f"retry after {RETRY_AFTER_S:g} s",
                    retry_after_s=RETRY_AFTER_S,
                )

    async def measure(self, bus: EventBus) -> None:
        consumers = await bus.js.consumers_info(METRICS.name)
        self.backlog = {
            c.config.durable_name: (c.num_pending or 0) + (c.num_ack_pending or 0)
            for c in consumers
            if c.config.durable_name
        }

    async def watch(self, bus: Callable[[], EventBus]) -> None:
        while True:
            try:
                await self.measure(bus())
            except Exception as exc:  # no figures is no reason to refuse: forget the old ones
                self.backlog = {}
                log.debug("ingest backlog unknown", extra={"error": repr(exc)})
            await asyncio.sleep(POLL_INTERVAL_S)
