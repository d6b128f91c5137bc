"""One HTTP probe: status, latency and what went wrong."""

from __future__ import annotations

import time

import aiohttp

from services.synthetic.domain import CheckDefinition, ProbeOutcome

MAX_BODY_BYTES = 1024 * 1024


async def probe(session: aiohttp.ClientSession, check: CheckDefinition) -> ProbeOutcome:
    """Never raises for a failing target: failure is the outcome being measured."""
    started = time.perf_counter()
    status: int | None = None
    error = ""
    try:
        async with session.request(
            check.method,
            check.url,
            timeout=aiohttp.ClientTimeout(total=check.timeout_s),
            allow_redirects=True,
        ) as response:
            status = response.status
            await response.content.read(MAX_BODY_BYTES)
    except TimeoutError:
        error = f"timed out after {check.timeout_s:g}s"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}".rstrip(": ")
    latency_ms = (time.perf_counter() - started) * 1000
    ok = not error and status == check.expected_status
    if not error and not ok:
        error = f"expected HTTP {check.expected_status}, got {status}"
    return ProbeOutcome(ok=ok, status_code=status, latency_ms=latency_ms, error=error)
