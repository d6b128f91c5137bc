"""The live stream over server-sent events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from services.gateway.common.errors import problems
from services.gateway.common.paths import PREFIX
from services.gateway.common.routes import Viewer
from services.gateway.common.state import GatewayState, StateDep
from shared.errors import Overloaded

EVENTS_PATH = f"{PREFIX}/events"

router = APIRouter(tags=["live"])


async def live_events(state: GatewayState) -> AsyncIterator[bytes]:
    subscriber = state.live.subscribe()
    try:
        yield b"retry: 2000\n: connected\n\n"
        while True:
            try:
                item = await subscriber.next(state.keepalive_s)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if item is None:
                return
            yield item.sse()
    finally:
        state.live.unsubscribe(subscriber)


@router.get(
    EVENTS_PATH,
    response_class=StreamingResponse,
    responses={
        **problems(401, 403),
        200: {"content": {"text/event-stream": {}}},
        429: {
            **problems(429)[429],
            "description": "As many live clients as the gateway takes are connected",
        },
    },
)
async def event_stream(_: Viewer, state: StateDep) -> StreamingResponse:
    """Every projected event as it is applied (server-sent events, keep-alive every 15 s)."""
    if state.live.full:
        raise Overloaded(
            f"{state.live.max_clients} live-stream clients are connected; retry later",
            retry_after_s=30.0,
        )
    return StreamingResponse(
        live_events(state),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
