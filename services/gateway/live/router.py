"""The live stream over server-sent events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from services.gateway.common.errors import problems
from services.gateway.common.paths import PREFIX
from services.gateway.common.routes import Viewer
from services.gateway.common.state import GatewayState, StateDep
from shared.errors import Overloaded

EVENTS_PATH = f"{PREFIX}/events"
# how soon a stream ends after its session ends or its key is revoked
REVALIDATE_EVERY_S = 1.0

router = APIRouter(tags=["live"])


def always() -> bool:
    return True


async def live_events(
    state: GatewayState, still_valid: Callable[[], bool] = always
) -> AsyncIterator[bytes]:
    """The stream of one client; it ends once the credentials it was opened with no
    longer hold (signed out, session removed, key revoked)."""
    subscriber = state.live.subscribe()
    try:
        yield b"retry: 2000\n: connected\n\n"
        quiet_s = 0.0
        while True:
            wait_s = min(state.keepalive_s - quiet_s, REVALIDATE_EVERY_S)
            try:
                item = await subscriber.next(wait_s)
            except TimeoutError:
                if not still_valid():
                    return
                quiet_s += wait_s
                if quiet_s >= state.keepalive_s:
                    quiet_s = 0.0
                    yield b": keep-alive\n\n"
                continue
            quiet_s = 0.0
            if item is None or not still_valid():
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
async def event_stream(request: Request, _: Viewer, state: StateDep) -> StreamingResponse:
    """Every projected event as it is applied (server-sent events, keep-alive every 15 s);
    the stream ends when the session or key it was opened with no longer holds."""
    if state.live.full:
        raise Overloaded(
            f"{state.live.max_clients} live-stream clients are connected; retry later",
            retry_after_s=30.0,
        )
    authenticator = getattr(request.app.state, "authenticator", None)
    validity = getattr(authenticator, "still_valid", None)
    return StreamingResponse(
        live_events(state, validity(request) if validity is not None else always),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
