"""Waiting for an outcome instead of sleeping for a guess."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.bus import EventBus

Probe = Callable[[], Any] | Callable[[], Awaitable[Any]]


async def eventually(
    probe: Probe, within_s: float = 10.0, what: str = "condition", every_s: float = 0.02
) -> Any:
    """Poll ``probe`` (sync or async) until it returns something truthy, and return that.

    Fails after ``within_s`` naming ``what`` and the last answer, so a timeout says why.
    """
    deadline = time.monotonic() + within_s
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within_s}s; last answer: {value!r}")
        await asyncio.sleep(every_s)


async def caught_up(bus: EventBus, durable: str, stream: str) -> None:
    """The durable consumer has acknowledged everything now in ``stream``."""
    last = (await bus.js.stream_info(stream)).state.last_seq

    async def probe() -> bool:
        info = await bus.js.consumer_info(stream, durable)
        return info.ack_floor.stream_seq >= last and info.num_ack_pending == 0

    await eventually(probe, what=f"{durable} to acknowledge {stream} up to {last}")
