"""Talking to the services that own the data: queries, and commands with read-your-writes.

A command's answer waits (a bounded time) until the read model shows its effect, then
returns the updated read model; if the read model has not caught up by then, the answer
is 202 with the command's result and, in ``Location``, the resource that will show it,
never the older state.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from services.gateway.common.state import GatewayState
from shared.commands import CommandResult
from shared.errors import Unavailable, VigilError

log = logging.getLogger(__name__)


async def request_owner(
    state: GatewayState, subject: str, body: BaseModel, timeout: float = 5.0
) -> Any:
    try:
        return await state.bus().request(subject, body.model_dump(mode="json"), timeout=timeout)
    except nats.errors.Error as exc:
        raise Unavailable(f"could not reach the service answering {subject}: {exc}") from exc


async def request_owner_json(
    state: GatewayState, subject: str, body: BaseModel, timeout: float = 5.0
) -> bytes:
    """``request_owner``'s result as the owner's JSON bytes, for answers passed on whole."""
    try:
        return await state.bus().request_json(
            subject, body.model_dump(mode="json"), timeout=timeout
        )
    except nats.errors.Error as exc:
        raise Unavailable(f"could not reach the service answering {subject}: {exc}") from exc


@dataclass(frozen=True)
class CommandOutcome:
    """A command's result, and whether this gateway's read model shows it yet."""

    result: CommandResult
    shown: bool


ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {
        "model": CommandResult,
        "description": "Done, but the read model does not show it yet: the body is the "
        "command's result (aggregate, stream sequence); the resource in the Location "
        "header shows the change once it has caught up",
        "headers": {
            "Location": {
                "description": "The resource that will show the change",
                "schema": {"type": "string"},
            }
        },
    }
}


async def send_command(
    state: GatewayState, subject: str, command: BaseModel, projection: str | None = None
) -> CommandOutcome:
    """Send a command, then wait (a bounded time) until ``projection`` (by default the
    read model of the stream the event landed on) has applied its last event."""
    state.health.refuse_writes()
    reply = await request_owner(state, subject, command)
    try:
        result = CommandResult.model_validate(reply)
    except ValidationError as exc:
        raise VigilError(f"{subject} answered something that is not a command result") from exc
    name = projection or state.projection_by_stream.get(result.stream)
    if result.seq <= 0 or name is None:
        return CommandOutcome(result, shown=True)
    shown = await state.progress.wait_for(name, result.seq, state.consistency_wait_s)
    if not shown:
        log.info(
            "answered 202: the read model has not applied the command's event yet",
            extra={"projection": name, "stream_seq": result.seq},
        )
    return CommandOutcome(result, shown)


def accepted(result: CommandResult, location: str) -> JSONResponse:
    return JSONResponse(result.model_dump(), status_code=202, headers={"Location": location})


async def updated_view(
    outcome: CommandOutcome,
    load: Callable[[], Awaitable[BaseModel | None]],
    location: str,
    status_code: int = 200,
) -> Any:
    """The read model after a command, once it shows the command's effect; until then
    202 with the command result and where to look."""
    view = await load() if outcome.shown else None
    if view is None:
        return accepted(outcome.result, location)
    if status_code == 201:
        return JSONResponse(
            view.model_dump(mode="json"), status_code=201, headers={"Location": location}
        )
    return view
