"""The webhook transport against real sockets: what counts as transient, what as permanent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest

from services.notifier.channels.http import RetryAfter
from services.notifier.channels.webhook import (
    deliver,
    request_for,
    signature,
    timestamped_signature,
    verify,
)
from services.notifier.domain import notification_for
from shared.channelconfig import WebhookChannel
from shared.errors import PermanentDeliveryError, TransientDeliveryError
from shared.events import IncidentOpened
from shared.natsserver import free_port
from shared.outbound import OutboundGuard, OutboundPolicy
from tests.notifier.conftest import ReceiverFactory, Reply

NOTE = notification_for(
    IncidentOpened(aggregate_id="inc-1", title="API down", severity="critical"), "ops"
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with OutboundGuard(OutboundPolicy()).session() as client:
        yield client


def channel(url: str, timeout: float = 2.0) -> WebhookChannel:
    return WebhookChannel(name="ops", type="webhook", url=url, secret="k", timeout=timeout)


async def test_accepted_request_returns_a_receipt(
    session: aiohttp.ClientSession, receiver_factory: ReceiverFactory
) -> None:
    receiver = await receiver_factory(Reply(204))
    receipt = await deliver(session, channel(receiver.url), NOTE)
    assert receipt.status_code == 204
    assert receipt.latency_ms > 0
    [request] = receiver.requests
    assert request.headers["X-Vigil-Signature"] == signature("k", request.body)
    stamped = request.headers["X-Vigil-Signature-256"]
    assert verify("k", stamped, request.body)
    assert not verify("other", stamped, request.body)
    assert request.json()["incident"]["id"] == "inc-1"


def test_the_timestamped_signature_refuses_replays_and_tampering() -> None:
    body, headers = request_for(channel("http://127.0.0.1:1/hook"), NOTE, at=1_700_000_000)
    header = headers["X-Vigil-Signature-256"]
    assert header == timestamped_signature("k", body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify("k", header, body, now=1_700_000_100)
    assert not verify("k", header, body, now=1_700_000_000 + 301)  # replayed later
    assert not verify("k", header, body + b" ", now=1_700_000_000)
    assert not verify("k", header.replace("t=1700000000", "t=1700000200"), body, 1_700_000_200)
    assert not verify("k", "v1=" + header.split("v1=")[1], body, now=1_700_000_000)
    # the old header signs the body alone
    assert headers["X-Vigil-Signature"] == signature("k", body)
    unsigned = WebhookChannel(name="ops", type="webhook", url="http://127.0.0.1:1/hook")
    assert "X-Vigil-Signature-256" not in request_for(unsigned, NOTE)[1]


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (Reply(500), TransientDeliveryError, "HTTP 500 Internal Server Error"),
        (Reply(408), TransientDeliveryError, "HTTP 408 Request Timeout"),
        (Reply(400), PermanentDeliveryError, "HTTP 400 Bad Request"),
        (Reply(401), PermanentDeliveryError, "HTTP 401 Unauthorized"),
    ],
)
async def test_status_codes(
    session: aiohttp.ClientSession,
    receiver_factory: ReceiverFactory,
    reply: Reply,
    error: type[Exception],
    message: str,
) -> None:
    receiver = await receiver_factory(reply)
    with pytest.raises(error) as raised:
        await deliver(session, channel(receiver.url), NOTE)
    assert str(raised.value) == message
    assert not isinstance(raised.value, RetryAfter)


async def test_rate_limited_says_when_to_come_back(
    session: aiohttp.ClientSession, receiver_factory: ReceiverFactory
) -> None:
    receiver = await receiver_factory(Reply(429, {"Retry-After": "7"}))
    with pytest.raises(RetryAfter) as raised:
        await deliver(session, channel(receiver.url), NOTE)
    assert raised.value.retry_after_s == 7.0


async def test_connection_refused_and_timeout_are_transient(
    session: aiohttp.ClientSession, receiver_factory: ReceiverFactory
) -> None:
    with pytest.raises(TransientDeliveryError, match="cannot connect: connection refused"):
        await deliver(session, channel(f"http://127.0.0.1:{free_port()}/hook"), NOTE)
    slow = await receiver_factory(Reply(200, hang_s=2.0))
    with pytest.raises(TransientDeliveryError, match=r"timed out after 0\.2s"):
        await deliver(session, channel(slow.url, timeout=0.2), NOTE)


async def test_an_unusable_url_is_permanent(session: aiohttp.ClientSession) -> None:
    with pytest.raises(PermanentDeliveryError, match="invalid URL"):
        await deliver(session, channel("http://exa mple.com:99999999/hook"), NOTE)


async def test_a_digest_rides_along_and_a_body_template_shapes_the_request(
    session: aiohttp.ClientSession, receiver_factory: ReceiverFactory
) -> None:
    receiver = await receiver_factory()
    other = notification_for(
        IncidentOpened(aggregate_id="inc-2", title="DB down", severity="critical"), "ops"
    )
    merged = replace(NOTE, digest=(other.payload,))
    await deliver(session, channel(receiver.url), merged)
    body = receiver.requests[0].json()
    assert body["incident"]["id"] == "inc-1"
    assert [d["incident"]["id"] for d in body["digest"]] == ["inc-2"]

    shaped = WebhookChannel.model_validate(
        {
            "name": "chat",
            "type": "webhook",
            "url": receiver.url,
            "secret": "k",
            "body_template": '{"text": {{ summary | tojson }}, "more": {{ digest | length }}}',
        }
    )
    await deliver(session, shaped, merged)
    request = receiver.requests[1]
    assert request.json() == {"text": NOTE.payload["summary"], "more": 1}
    assert verify("k", request.headers["X-Vigil-Signature-256"], request.body)  # still signed

    broken = shaped.model_copy(update={"body_template": "not {{ summary }} json"})
    with pytest.raises(PermanentDeliveryError, match="did not render JSON"):
        await deliver(session, broken, NOTE)
    assert len(receiver.requests) == 2  # nothing sent for a body that is not JSON
