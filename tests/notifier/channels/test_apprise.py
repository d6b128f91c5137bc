"""The apprise channel against real local targets: apprise's JSON notification and an
ntfy server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from services.notifier.channels.apprise_channel import deliver
from services.notifier.domain import notification_for
from shared.channelconfig import AppriseChannel, MessageTemplate
from shared.errors import PermanentDeliveryError, TransientDeliveryError
from shared.events import AlertFired, AlertResolved
from shared.outbound import OutboundGuard, OutboundPolicy, parse_networks
from tests.receivers.apprise import AppriseReceiver

FIRED = AlertFired(
    aggregate_id="alert-7",
    rule="cpu-high",
    fingerprint="fp-cpu-web1",
    metric="cpu",
    labels={"host": "web1"},
    severity="critical",
    value=97.5,
    threshold=90,
)
RESOLVED = AlertResolved(
    aggregate_id="alert-7",
    rule="cpu-high",
    fingerprint="fp-cpu-web1",
    metric="cpu",
    labels={"host": "web1"},
    severity="critical",
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with OutboundGuard(OutboundPolicy()).session() as client:
        yield client


@pytest.fixture
async def target() -> AsyncIterator[AppriseReceiver]:
    async with AppriseReceiver() as receiver:
        yield receiver


def channel(urls: str, **changes: Any) -> AppriseChannel:
    return AppriseChannel.model_validate(
        {"name": "tail", "type": "apprise", "urls": urls, "timeout": 3, **changes}
    )


async def test_apprise_json_target_gets_the_alert(
    session: aiohttp.ClientSession, target: AppriseReceiver
) -> None:
    await deliver(session, channel(target.json_url()), notification_for(FIRED, "tail"))
    await deliver(session, channel(target.json_url()), notification_for(RESOLVED, "tail"))
    fired, resolved = target.of("json")
    assert fired.body["type"] == "failure" and resolved.body["type"] == "success"
    assert fired.title == "[CRITICAL] cpu-high firing"
    assert fired.message.startswith("CRITICAL cpu-high firing: cpu=97.5")
    assert "#/alerts/alert-7" in fired.message and "host: web1" in fired.message
    assert not target.rejected


async def test_ntfy_and_json_from_one_channel(
    session: aiohttp.ClientSession, target: AppriseReceiver
) -> None:
    urls = f"{target.ntfy_url('oncall')}, {target.json_url()}"
    template = MessageTemplate(title="{{ alert.rule }} on {{ alert.labels.host }}", text="page!")
    await deliver(session, channel(urls, template=template), notification_for(FIRED, "tail"))
    [ntfy] = target.of("ntfy")
    [json] = target.of("json")
    assert ntfy.body["topic"] == "oncall"
    assert ntfy.title == json.title == "cpu-high on web1"
    assert ntfy.message.startswith("page!")


@pytest.mark.parametrize("status", [500, 429, 404])
async def test_a_failing_target_is_transient(
    session: aiohttp.ClientSession, target: AppriseReceiver, status: int
) -> None:
    target.fail_next(status)
    with pytest.raises(TransientDeliveryError, match="could not notify 1 of 1"):
        await deliver(session, channel(target.json_url()), notification_for(FIRED, "tail"))
    assert len(target.received) == 1


async def test_a_slow_target_times_out(
    session: aiohttp.ClientSession, target: AppriseReceiver
) -> None:
    target.delay_s = 3.0
    with pytest.raises(TransientDeliveryError):
        await deliver(
            session, channel(target.json_url(), timeout=0.5), notification_for(FIRED, "tail")
        )


async def test_an_unknown_url_is_permanent_and_not_echoed(session: aiohttp.ClientSession) -> None:
    with pytest.raises(PermanentDeliveryError, match="URL #2 is not") as caught:
        await deliver(
            session,
            channel("json://127.0.0.1:1/x nosuch://secret-token@host"),
            notification_for(FIRED, "tail"),
        )
    assert "secret-token" not in str(caught.value)


async def test_the_outbound_policy_is_applied_to_apprise_targets(target: AppriseReceiver) -> None:
    policy = OutboundPolicy(deny=parse_networks(["127.0.0.0/8"]))
    async with OutboundGuard(policy).session() as guarded:
        with pytest.raises(PermanentDeliveryError, match="refused by the outbound policy"):
            await deliver(guarded, channel(target.json_url()), notification_for(FIRED, "tail"))
    async with OutboundGuard(OutboundPolicy()).session() as guarded:
        with pytest.raises(PermanentDeliveryError, match="link-local"):
            await deliver(
                guarded, channel("json://169.254.169.254/latest"), notification_for(FIRED, "tail")
            )
    assert len(target.received) == 0
