"""Prometheus' HTTP API parameters, read as Prometheus reads them.

Parameters come from the query string and, for POST, from an
``application/x-www-form-urlencoded`` body (Grafana POSTs by default); both are merged,
repeated names (``match[]``) kept in order. Times are RFC 3339 or Unix seconds (float);
durations are Prometheus durations (``1h30m``, ``15s``) or float seconds. A bad value is
refused with Prometheus' own wording, which names the parameter.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl

from fastapi import Request

from shared.commands import (
    MAX_PROM_POINTS,
    PROM_DEFAULT_TIMEOUT_S,
    PROM_MAX_TIME_MS,
    PROM_MAX_TIMEOUT_S,
    PROM_MIN_TIME_MS,
)

FORM = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 1024 * 1024
# Prometheus' minTime/maxTime, as clients (Grafana among them) send them for "everything"
MIN_TIME_MS = PROM_MIN_TIME_MS
MAX_TIME_MS = PROM_MAX_TIME_MS
MIN_TIME_TEXTS = {"0001-01-01T00:00:00Z", "-62135596801", "-9223372036854775808"}
MAX_TIME_TEXTS = {"9999-12-31T23:59:59Z", "253402300799", "9223372036854775807"}
DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
DURATION_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class BadParameter(Exception):
    """Prometheus' ``bad_data``: answered 400 with ``message``."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Params:
    pairs: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (the body's before the query string's, as Go's
        ``FormValue`` gives)."""
        for key, value in self.pairs:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]


async def read_params(request: Request) -> Params:
    pairs: list[tuple[str, str]] = []
    if request.method == "POST":
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == FORM:
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_FORM_BYTES:
                    raise BadParameter(f"the form body is larger than {MAX_FORM_BYTES} bytes")
            try:
                text = body.decode()
            except UnicodeDecodeError as exc:
                raise BadParameter(f"the form body is not UTF-8: {exc}") from exc
            pairs += parse_qsl(text, keep_blank_values=True)
    pairs += request.query_params.multi_items()
    return Params(pairs)


def invalid(name: str, problem: str) -> BadParameter:
    return BadParameter(f'invalid parameter "{name}": {problem}')


def parse_time_ms(text: str, name: str) -> int:
    """Unix milliseconds of a Prometheus timestamp (Unix seconds or RFC 3339)."""
    if text in MIN_TIME_TEXTS:
        return MIN_TIME_MS
    if text in MAX_TIME_TEXTS:
        return MAX_TIME_MS
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    else:
        if math.isfinite(seconds) and MIN_TIME_MS <= seconds * 1000 <= MAX_TIME_MS:
            return round(seconds * 1000)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or "T" not in text.upper():
        raise invalid(name, f'cannot parse "{text[:100]}" to a valid timestamp')
    return round(parsed.timestamp() * 1000)


def time_param(params: Params, name: str, default_ms: int) -> int:
    text = params.get(name)
    return default_ms if text is None or text == "" else parse_time_ms(text, name)


def parse_duration_ms(text: str, name: str) -> int:
    """Milliseconds of a Prometheus duration (``1h30m``, ``15s``) or float seconds."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or abs(seconds) * 1000 >= 2**63:
            raise invalid(
                name, f'cannot parse "{text[:100]}" to a valid duration. It overflows int64'
            )
        return round(seconds * 1000)
    match = DURATION.match(text)
    if not text or match is None or not any(match.groups()):
        raise invalid(name, f'cannot parse "{text[:100]}" to a valid duration')
    return sum(
        int(part) * unit for part, unit in zip(match.groups(), DURATION_MS, strict=True) if part
    )


def timeout_s(params: Params) -> float:
    """The query's deadline: ``timeout`` when given, never beyond the service's cap."""
    text = params.get("timeout")
    if text is None or text == "":
        return PROM_DEFAULT_TIMEOUT_S
    ms = parse_duration_ms(text, "timeout")
    if ms <= 0:
        raise invalid("timeout", "timeout must be positive")
    return min(ms / 1000, PROM_MAX_TIMEOUT_S)


def query_param(params: Params) -> str:
    query = params.get("query")
    if not query or not query.strip():
        raise invalid("query", "1:1: parse error: no expression found in input")
    return query


def range_window(params: Params) -> tuple[int, int, int]:
    """start, end and step of a range query, in milliseconds, checked as Prometheus does."""
    start_text, end_text, step_text = params.get("start"), params.get("end"), params.get("step")
    for name, text in (("start", start_text), ("end", end_text), ("step", step_text)):
        if text is None or text == "":
            raise invalid(
                name, f'cannot parse "" to a valid {"duration" if name == "step" else "timestamp"}'
            )
    assert start_text is not None and end_text is not None and step_text is not None
    start = parse_time_ms(start_text, "start")
    end = parse_time_ms(end_text, "end")
    if end < start:
        raise invalid("end", "end timestamp must not be before start time")
    step = parse_duration_ms(step_text, "step")
    if step <= 0:
        raise invalid(
            "step",
            "zero or negative query resolution step widths are not accepted. "
            "Try a positive integer",
        )
    if (end - start) // step > MAX_PROM_POINTS:
        raise BadParameter(
            f"exceeded maximum resolution of {MAX_PROM_POINTS:,} points per timeseries. "
            "Try decreasing the query resolution (?step=XX)"
        )
    return start, end, step


def lookup_window(params: Params) -> tuple[int, int]:
    """start and end of a series or label lookup: everything when not given."""
    start = time_param(params, "start", MIN_TIME_MS)
    end = time_param(params, "end", MAX_TIME_MS)
    if end < start:
        raise invalid("end", "end timestamp must not be before start time")
    return start, end


def limit_param(params: Params) -> int:
    text = params.get("limit")
    if text is None or text == "":
        return 0
    try:
        limit = int(text)
    except ValueError:
        raise invalid("limit", f'cannot parse "{text[:100]}" to a valid limit') from None
    if limit < 0:
        raise invalid("limit", "limit must be non-negative")
    return limit


def label_name(name: str) -> str:
    if name != "__name__" and not LABEL_NAME.match(name):
        raise BadParameter(f'invalid label name: "{name[:200]}"')
    return name
