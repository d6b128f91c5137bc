"""``GET /api/monitoring/logs/tail``: new log lines as server-sent events, filtered as a
search is."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from services.gateway.common.errors import AUTHENTICATED, problems
from services.gateway.common.paths import PREFIX
from services.gateway.common.routes import Viewer
from services.gateway.common.state import GatewayState, StateDep
from services.gateway.live.router import REVALIDATE_EVERY_S, always
from services.gateway.logs.batch import parse_levels, parse_names
from services.gateway.logs.router import LabelsParam, LevelParam, ServiceParam, TextParam
from services.gateway.logs.tail import LogTails, TailClient
from services.gateway.metrics.batch import parse_label_filter
from shared.errors import Overloaded
from shared.logmatch import LineFilter

router = APIRouter(prefix=PREFIX, tags=["logs"])


async def tail_events(
    state: GatewayState, client: TailClient, still_valid: Callable[[], bool] = always
) -> AsyncIterator[bytes]:
    """One client's stream: its lines, a keep-alive comment when quiet, and its end once
    it was dropped, the gateway stops or its credentials no longer hold."""
    tails: LogTails = state.log_tails
    try:
        yield b"retry: 2000\n: tailing\n\n"
        quiet_s = 0.0
        while True:
            wait_s = min(state.keepalive_s - quiet_s, REVALIDATE_EVERY_S)
            try:
                item = await client.next(wait_s)
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
            yield item
    finally:
        await tails.leave(client)


@router.get(
    "/logs/tail",
    response_class=StreamingResponse,
    responses={
        **problems(*AUTHENTICATED, 422, 503),
        200: {
            "content": {"text/event-stream": {}},
            "description": "`log` events (data: a line as a search answers it), `dropped` "
            "once the client fell too far behind (the stream then ends), keep-alive comments",
        },
        429: {
            **problems(429)[429],
            "description": "As many tail clients as the gateway takes are connected",
        },
    },
)
async def tail_logs(
    request: Request,
    _: Viewer,
    state: StateDep,
    level: LevelParam = None,
    service: ServiceParam = None,
    labels: LabelsParam = None,
    q: TextParam = None,
) -> StreamingResponse:
    """Lines stored from now on that match every filter (as a search's), as server-sent
    events; a client that cannot keep up is dropped with a notice."""
    line_filter = LineFilter.of(
        parse_levels(level), parse_names(service), parse_label_filter(labels), q or ""
    )
    tails = state.log_tails
    if tails.full:
        raise Overloaded(
            f"{tails.max_clients} log tail clients are connected; retry later",
            retry_after_s=30.0,
        )
    client = await tails.join(state.bus(), line_filter)
    authenticator = getattr(request.app.state, "authenticator", None)
    validity = getattr(authenticator, "still_valid", None)
    return StreamingResponse(
        tail_events(state, client, validity(request) if validity is not None else always),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
