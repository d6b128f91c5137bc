"""The contract every channel type implements, so a new one is one small module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from services.notifier.domain import Notification


@dataclass(frozen=True)
class Receipt:
    """Proof that a receiver accepted a notification."""

    status_code: int | None
    latency_ms: float
    thread: str | None = None  # what later messages about the same subject refer to


class Transport(Protocol):
    """Sends one notification.

    Raises shared.errors.TransientDeliveryError when a later attempt may succeed
    (timeouts, connection errors, 5xx, 429) and PermanentDeliveryError when it will
    not (other 4xx, an invalid URL).
    """

    async def __call__(
        self, session: aiohttp.ClientSession, channel: Any, notification: Notification
    ) -> Receipt: ...
