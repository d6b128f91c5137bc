"""One HTTP probe: status, latency and what went wrong.

The request goes through the outbound guard (the session must come from it), follows
at most ``MAX_REDIRECTS`` redirects, each hop checked again, and its error text is a
fixed description: never bytes the target sent.
"""

from __future__ import annotations

import time

import aiohttp

from services.synthetic.domain import CheckDefinition, ProbeOutcome
from shared import outbound

MAX_BODY_BYTES = 1024 * 1024
MAX_REDIRECTS = 5


async def probe(session: aiohttp.ClientSession, check: CheckDefinition) -> ProbeOutcome:
    """Never raises for a failing target: failure is the outcome being measured."""
    if not check.method_allowed:
        return ProbeOutcome(
            ok=False,
            status_code=None,
            latency_ms=0.0,
            error=f"not sent: method {check.method} needs allow_unsafe_method",
        )
    started = time.perf_counter()
    status: int | None = None
    error = ""
    try:
        async with outbound.request(
            session,
            check.method,
            check.url,
            timeout_s=check.timeout_s,
            max_redirects=MAX_REDIRECTS,
        ) as response:
            status = response.status
            await response.content.read(MAX_BODY_BYTES)
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
        error = outbound.describe_error(exc, check.timeout_s)
    latency_ms = (time.perf_counter() - started) * 1000
    ok = not error and status == check.expected_status
    if not error and not ok:
        error = f"expected HTTP {check.expected_status}, got {status}"
    return ProbeOutcome(ok=ok, status_code=status, latency_ms=latency_ms, error=error)
