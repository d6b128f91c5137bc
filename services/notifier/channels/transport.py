"""The contract every channel type implements, so a new one is one small module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import aiohttp

from services.notifier.domain import Notification
from shared.config import ChannelConfig


@dataclass(frozen=True)
class Receipt:
    """Proof that a receiver accepted a notification."""

    status_code: int | None
    latency_ms: float


class Transport(Protocol):
    """Sends one notification.

    Raises shared.errors.TransientDeliveryError when a later attempt may succeed
    (timeouts, connection errors, 5xx, 429) and PermanentDeliveryError when it will
    not (other 4xx, an invalid URL).
    """

    async def __call__(
        self, session: aiohttp.ClientSession, channel: ChannelConfig, notification: Notification
    ) -> Receipt: ...
