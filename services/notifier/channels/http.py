"""How an HTTP answer maps to a delivery outcome; shared by every HTTP-based channel."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from shared.errors import PermanentDeliveryError, TransientDeliveryError

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


def raise_for_status(status: int, retry_after: str | None, reason: str = "") -> None:
    """Success for 2xx; otherwise the delivery error the status calls for."""
    if 200 <= status < 300:
        return
    text = f"HTTP {status}{' ' + reason if reason else ''}"
    if status == 429 or status >= 500 or status == 408:
        wait = parse_retry_after(retry_after)
        if wait is not None:
            raise RetryAfter(f"{text}; retry after {wait:g}s", wait)
        raise TransientDeliveryError(text)
    raise PermanentDeliveryError(text)
