"""POST a JSON document through the outbound guard and keep what the answer said.

The chat-style providers (Slack, PagerDuty, Teams, Discord) all take JSON and some
answer with JSON that matters (Slack's ``ok``/``ts``, Discord's ``retry_after``), so the
answer's body is read, bounded, rather than thrown away as the webhook channel does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from services.notifier.channels.http import outbound_errors
from shared import outbound

MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "vigil-notifier"


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None
    body: bytes
    latency_ms: float

    def json(self) -> Any:
        """The answer as JSON, or None when it is not (a proxy's page, a cut body)."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    document: Any,
    *,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """One POST; connection failures become delivery errors (see ``outbound_errors``),
    HTTP statuses are left to the caller, which knows the provider's conventions."""
    sent = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
    sent.update(headers or {})
    started = time.perf_counter()
    async with (
        outbound_errors(timeout_s),
        outbound.request(
            session,
            "POST",
            url,
            data=orjson.dumps(document),
            headers=sent,
            timeout_s=timeout_s,
            max_redirects=0,  # a provider URL that moved is a configuration to fix
        ) as response,
    ):
        body = await response.content.read(MAX_ANSWER_BYTES)
        status = response.status
        retry_after = response.headers.get("Retry-After")
    return Answer(status, retry_after, body, (time.perf_counter() - started) * 1000)
