"""A section's read model fed by one durable consumer, and the handler that applies each
batch of events in one transaction with its checkpoint, then shows it to live clients."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.common.state import GatewayState
from services.gateway.live.stream import LiveEvent
from shared.consumer import BatchHandler, Delivery
from shared.events import Event
from shared.streams import StreamSpec

log = logging.getLogger(__name__)

Projector = Callable[[AsyncConnection, Event, int], Awaitable[None]]
# the public views of some rows of a read model, by id (rows gone are absent)
ViewLoader = Callable[[AsyncConnection, list[str]], Awaitable[dict[str, dict[str, Any]]]]


def by_aggregate(event: Event) -> str:
    return event.aggregate_id


@dataclass(frozen=True)
class LiveView:
    """How live clients see a projection's changes: the resource's name, which row an
    event changed, and how to load the public views of rows."""

    resource: str
    load: ViewLoader
    key: Callable[[Event], str] = by_aggregate


@dataclass(frozen=True)
class Projection:
    """One read model fed by one durable consumer; ``name`` is also its checkpoint key."""

    name: str
    stream: StreamSpec
    filter_subject: str
    project: Projector
    live: LiveView | None = None


async def show_live(
    state: GatewayState, projection: Projection, applied: list[tuple[Event, Delivery]]
) -> None:
    """Tell live clients what changed, with the public view of each changed row: one read
    per batch, and none at all while nobody is listening."""
    live = projection.live
    if live is None or not applied or not state.live.subscribers:
        return
    keys = [live.key(event) for event, _ in applied]
    try:
        async with state.store.engine.connect() as conn:
            views = await live.load(conn, sorted(set(keys)))
    except Exception as exc:  # the change is stored; only its announcement is lost
        log.warning(
            "live views not loaded", extra={"projection": projection.name, "error": repr(exc)}
        )
        return
    for key, (event, delivery) in zip(keys, applied, strict=True):
        state.live.publish(
            LiveEvent(
                resource=live.resource,
                id=key,
                change=event.type,
                stream=delivery.stream,
                seq=delivery.stream_seq,
                view=views.get(key),
            )
        )


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
        await show_live(state, projection, applied)
        if len(applied) < len(items):
            log.debug(
                "skipped events already projected",
                extra={"projection": projection.name, "skipped": len(items) - len(applied)},
            )

    project.__doc__ = f"Projects {projection.stream.name} into the gateway read model."
    return project
