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
from shared.consumer import Delivery, Handler
from shared.events import Event

log = logging.getLogger(__name__)


def projection_handler(state: GatewayState, projection: Projection) -> Handler:
    async def project(event: Event, delivery: Delivery) -> None:
        async def change(conn: AsyncConnection) -> None:
            await projection.project(conn, event, delivery.stream_seq)

        applied = await state.store.apply(projection.name, delivery.stream_seq, change)
        state.progress.advance(projection.name, delivery.stream_seq)
        if applied:
            state.live.publish(LiveEvent.of(event, delivery))
        else:
            log.debug(
                "skipped an event already projected",
                extra={"projection": projection.name, "stream_seq": delivery.stream_seq},
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
