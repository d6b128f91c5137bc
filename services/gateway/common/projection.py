"""A section's read model fed by one durable consumer, and the handler that applies each
batch of events in one transaction with its checkpoint, then shows it to live clients."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.common.state import GatewayState
from services.gateway.live.stream import LiveEvent
from shared.consumer import BatchHandler, Delivery
from shared.events import Event
from shared.streams import StreamSpec

log = logging.getLogger(__name__)

Projector = Callable[[AsyncConnection, Event, int], Awaitable[None]]


@dataclass(frozen=True)
class Projection:
    """One read model fed by one durable consumer; ``name`` is also its checkpoint key."""

    name: str
    stream: StreamSpec
    filter_subject: str
    project: Projector


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
