"""How an HTTP answer maps to a delivery outcome; shared by every HTTP-based channel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from shared.errors import PermanentDeliveryError, TransientDeliveryError
from shared.outbound import describe_error, refusal_in, status_text

MAX_RETRY_AFTER_S = 3600.0


class RetryAfter(TransientDeliveryError):
    """A transient failure where the receiver said when to come back."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def raise_for_status(status: int, retry_after: str | None) -> None:
    """Success for 2xx; otherwise the delivery error the status calls for, described by
    the status's standard phrase (the receiver's own reason text is not repeated)."""
    if 200 <= status < 300:
        return
    text = status_text(status)
    if status == 429 or status >= 500 or status == 408:
        wait = parse_retry_after(retry_after)
        if wait is not None:
            raise RetryAfter(f"{text}; retry after {wait:g}s", wait)
        raise TransientDeliveryError(text)
    raise PermanentDeliveryError(text)


@contextlib.asynccontextmanager
async def outbound_errors(timeout_s: float) -> AsyncIterator[None]:
    """Turns a failed request into the delivery error it calls for: the outbound policy's
    refusal and an invalid URL will not mend by themselves, the rest may."""
    try:
        yield
    except (
        TimeoutError,
        aiohttp.ClientError,
        OSError,
        ValueError,
        asyncio.IncompleteReadError,
    ) as exc:
        text = describe_error(exc, timeout_s)
        if refusal_in(exc) is not None or isinstance(exc, aiohttp.InvalidURL | ValueError):
            raise PermanentDeliveryError(text) from exc
        raise TransientDeliveryError(text) from exc
