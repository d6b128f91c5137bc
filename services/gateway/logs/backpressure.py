"""Log ingest backpressure: 429 while the running log store or log rules' evaluator
(``logs-store``, ``alerts-logs``: every durable on LOGS) is too far behind.

The same rule as for samples (``VIGIL_INGEST_MAX_BACKLOG`` batches, only a running owner
counts), read from the LOGS stream's consumers: a store that cannot keep up would
otherwise fall behind until LOGS drops lines it never stored, and an evaluator behind
would page late.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.gateway.metrics.backpressure import IngestBackpressure
from shared.bus import EventBus
from shared.streams import LOGS


@dataclass
class LogBackpressure(IngestBackpressure):
    async def measure(self, bus: EventBus) -> None:
        consumers = await bus.js.consumers_info(LOGS.name)
        self.backlog = {
            c.config.durable_name: (c.num_pending or 0) + (c.num_ack_pending or 0)
            for c in consumers
            if c.config.durable_name
        }
