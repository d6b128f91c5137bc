"""An SLO's windows on the UTC line: rolling (the last N days) and calendar (this month,
this quarter), and the calendar month a report covers."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from shared.sloconfig import window_seconds

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def next_month(at: datetime) -> datetime:
    return month_start(at.year + (at.month == 12), at.month % 12 + 1)


def window_bounds(window: str, now_s: float) -> tuple[float, float]:
    """``[start, end)`` in Unix seconds of ``window`` as it stands at ``now_s``: a
    calendar window runs from its first instant to now (what is left of it is not yet
    measured)."""
    length = window_seconds(window)
    if length is not None:
        return now_s - length, now_s
    now = datetime.fromtimestamp(now_s, UTC)
    if window == "month":
        return month_start(now.year, now.month).timestamp(), now_s
    if window == "quarter":
        return month_start(now.year, (now.month - 1) // 3 * 3 + 1).timestamp(), now_s
    raise ValueError(f"unknown window {window!r}")


def window_length_s(window: str, now_s: float) -> float:
    """The whole window's length: a calendar month or quarter as long as it is."""
    length = window_seconds(window)
    if length is not None:
        return float(length)
    start, _ = window_bounds(window, now_s)
    begin = datetime.fromtimestamp(start, UTC)
    end = next_month(begin)
    if window == "quarter":
        end = next_month(next_month(end))
    return end.timestamp() - start


def month_bounds(text: str) -> tuple[float, float]:
    """``YYYY-MM`` as ``[first instant, first instant of the next month)``, UTC."""
    found = _MONTH.match(text.strip())
    if found is None or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 1970:
        raise ValueError(f"{text!r} is not a month like 2026-11")
    start = month_start(int(found.group(1)), int(found.group(2)))
    return start.timestamp(), next_month(start).timestamp()
