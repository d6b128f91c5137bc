"""Consumers: apply each event to its read model, then show it to live clients.

Also the heartbeat listener that feeds /api/monitoring/health/system.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import orjson
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.livestream import LiveEvent
from services.gateway.projections import Projection
from services.gateway.state import GatewayState
from shared.consumer import BatchHandler, Delivery
from shared.events import Event

log = logging.getLogger(__name__)


def projection_handler(state: GatewayState, projection: Projection) -> BatchHandler:
    async def project(items: list[tuple[Event, Delivery]]) -> None:
        applied: list[tuple[Event, Delivery]] = []

        async def change(conn: AsyncConnection, last: int) -> None:
            applied.clear()  # a retried transaction starts over
            for event, delivery in items:
                if delivery.stream_seq > last:
                    await projection.project(conn, event, delivery.stream_seq)
                    applied.append((event, delivery))

        through = items[-1][1].stream_seq
        await state.store.apply_through(projection.name, through, change)
        state.progress.advance(projection.name, through)
        for event, delivery in applied:
            state.live.publish(LiveEvent.of(event, delivery))
        if len(applied) < len(items):
            log.debug(
                "skipped events already projected",
                extra={"projection": projection.name, "skipped": len(items) - len(applied)},
            )

    project.__doc__ = f"Projects {projection.stream.name} into the gateway read model."
    return project


def heartbeat_listener(state: GatewayState) -> Callable[[Msg], Awaitable[None]]:
    async def on_heartbeat(msg: Msg) -> None:
        try:
            payload = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            log.warning("ignored a heartbeat that is not JSON", extra={"subject": msg.subject})
            return
        if isinstance(payload, dict):
            state.liveness.record(payload, time.time())

    return on_heartbeat
