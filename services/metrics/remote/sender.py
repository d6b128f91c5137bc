"""One remote-write 1.0 request and what its answer means, as Prometheus reads it.

2xx: stored. 5xx, 429 and a store out of reach: worth trying again (after the
``Retry-After`` the store asked for, if any). Any other status: the store will never
take this body (bad samples, out of order, too old, not allowed), so it is dropped and
counted; retrying would only block every sample behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import aiohttp

from services.metrics.remote.auth import NO_AUTH, RemoteAuth
from shared.promwire import REMOTE_WRITE_HEADERS

USER_AGENT = "Vigil-remote-write/1.0"
MAX_REASON_CHARS = 300  # of the store's answer, in logs and status

Verdict = Literal["stored", "retry", "drop"]


@dataclass(frozen=True)
class Answer:
    verdict: Verdict
    status: int | None  # None: no answer (connection refused, timeout)
    reason: str = ""
    retry_after_s: float = 0.0


def verdict_for(status: int) -> Verdict:
    if 200 <= status < 300:
        return "stored"
    if status == 429 or status >= 500:
        return "retry"
    return "drop"


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0  # an HTTP date: the backoff decides


class RemoteWriteSender:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        auth: RemoteAuth = NO_AUTH,
        timeout_s: float = 30.0,
    ):
        self.session = session
        self.url = url
        self.headers = {**REMOTE_WRITE_HEADERS, "User-Agent": USER_AGENT, **auth.headers()}
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(self, body: bytes) -> Answer:
        """POST one compressed ``WriteRequest``; never raises for the store's failures."""
        try:
            async with self.session.post(
                self.url, data=body, headers=self.headers, timeout=self.timeout
            ) as response:
                text = (await response.content.read(4096)).decode("utf-8", "replace")
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Answer("retry", None, f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS])
        verdict = verdict_for(status)
        reason = "" if verdict == "stored" else f"HTTP {status}: {text.strip()}"
        return Answer(verdict, status, reason[:MAX_REASON_CHARS], retry_after)
