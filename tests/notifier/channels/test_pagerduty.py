"""The PagerDuty transport against an Events API v2 stand-in."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from services.notifier.channels import TRANSPORTS
from services.notifier.channels.http import RetryAfter
from services.notifier.channels.pagerduty import deliver, event_for
from shared.channelconfig import PagerDutyChannel
from shared.errors import PermanentDeliveryError, TransientDeliveryError
from shared.outbound import OutboundGuard, OutboundPolicy
from tests.notifier.channels.samples import (
    ACKNOWLEDGED,
    ESCALATED,
    FIRED,
    INCIDENT,
    INCIDENT_RESOLVED,
    RESOLVED,
    RUNBOOK,
    WARNING,
    with_digest,
)
from tests.receivers.pagerduty import TEST_ROUTING_KEY, PagerDutyReceiver, event_problems


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with OutboundGuard(OutboundPolicy()).session() as client:
        yield client


@pytest.fixture
async def pagerduty() -> AsyncIterator[PagerDutyReceiver]:
    async with PagerDutyReceiver() as receiver:
        yield receiver


def channel(url: str, **extra: Any) -> PagerDutyChannel:
    return PagerDutyChannel.model_validate(
        {"name": "pd", "type": "pagerduty", "routing_key": TEST_ROUTING_KEY, "events_url": url}
        | extra
    )


async def test_a_fired_alert_triggers_with_the_documented_fields(
    session: aiohttp.ClientSession, pagerduty: PagerDutyReceiver
) -> None:
    assert TRANSPORTS["pagerduty"] is deliver
    receipt = await deliver(session, channel(pagerduty.url), FIRED)
    assert receipt.status_code == 202
    assert pagerduty.rejected == []
    [event] = pagerduty.events
    assert event["routing_key"] == TEST_ROUTING_KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == "fp-cpu-high-db-1"
    body = event["payload"]
    assert body["summary"] == FIRED.payload["summary"]
    assert body["severity"] == "critical"
    assert body["source"] == "db-1"  # the host label, before the channel's own source
    assert body["timestamp"] == "2026-11-30T03:04:05+00:00"
    assert (body["component"], body["group"], body["class"]) == ("cpu", "billing", "cpu-high")
    details = body["custom_details"]
    assert details["value"] == 97.5
    assert details["threshold"] == 90
    assert details["labels"]["host"] == "db-1"
    assert event["links"] == [
        {"href": "http://localhost:8080/monitoring#/alerts/alert-7", "text": "Open in Vigil"},
        {"href": RUNBOOK, "text": "Runbook"},
    ]


async def test_trigger_acknowledge_resolve_land_on_one_pagerduty_alert(
    session: aiohttp.ClientSession, pagerduty: PagerDutyReceiver
) -> None:
    pd = channel(pagerduty.url)
    statuses = []
    for note in (FIRED, ESCALATED, ACKNOWLEDGED, RESOLVED):
        await deliver(session, pd, note)
        statuses.append(pagerduty.alerts["fp-cpu-high-db-1"].status)
    assert statuses == ["triggered", "triggered", "acknowledged", "resolved"]
    assert [e["event_action"] for e in pagerduty.events] == [
        "trigger",
        "trigger",
        "acknowledge",
        "resolve",
    ]
    assert {e["dedup_key"] for e in pagerduty.events} == {"fp-cpu-high-db-1"}
    assert list(pagerduty.alerts) == ["fp-cpu-high-db-1"]
    assert "payload" not in pagerduty.events[2]  # acknowledge and resolve carry only the key
    assert pagerduty.rejected == []


async def test_an_incident_is_keyed_by_its_id(
    session: aiohttp.ClientSession, pagerduty: PagerDutyReceiver
) -> None:
    await deliver(session, channel(pagerduty.url, source="vigil-eu"), INCIDENT)
    await deliver(session, channel(pagerduty.url), INCIDENT_RESOLVED)
    assert pagerduty.alerts["inc-3"].status == "resolved"
    trigger = pagerduty.events[0]
    assert trigger["payload"]["severity"] == "info"
    assert trigger["payload"]["source"] == "vigil-eu"
    assert trigger["links"] == [
        {"href": "http://localhost:8080/monitoring#/incidents/inc-3", "text": "Open in Vigil"}
    ]


def test_severities_summary_length_and_digest() -> None:
    pd = channel("https://events.pagerduty.com/v2/enqueue")
    assert event_for(pd, WARNING)["payload"]["severity"] == "warning"
    odd = dataclasses.replace(
        FIRED,
        payload={
            **FIRED.payload,
            "summary": "x" * 5000,
            "alert": {**FIRED.payload["alert"], "severity": "page"},
        },
    )
    event = event_for(pd, with_digest(odd, 3))
    assert event["payload"]["severity"] == "error"  # unknown severities are still paged
    assert len(event["payload"]["summary"]) == 1024
    assert event["payload"]["custom_details"]["digest"][0] == "3 more alerts for cpu-high"
    assert event_problems(event) == []


async def test_a_users_routing_key_replaces_the_channels(
    session: aiohttp.ClientSession, pagerduty: PagerDutyReceiver
) -> None:
    theirs = "U" * 32
    await deliver(session, channel(pagerduty.url), dataclasses.replace(FIRED, recipient=theirs))
    assert pagerduty.events[0]["routing_key"] == theirs


async def test_an_invalid_event_is_refused_for_good(
    session: aiohttp.ClientSession, pagerduty: PagerDutyReceiver
) -> None:
    with pytest.raises(PermanentDeliveryError, match="HTTP 400 Bad Request"):
        await deliver(session, channel(pagerduty.url, routing_key="too-short"), FIRED)
    [rejection] = pagerduty.rejected
    assert rejection.problems == ["routing_key must be the 32-character integration key"]


def test_the_stand_in_refuses_what_pagerduty_refuses() -> None:
    good = event_for(channel("https://events.pagerduty.com/v2/enqueue"), FIRED)
    assert event_problems(good) == []
    assert event_problems({**good, "event_action": "page"})
    assert event_problems({**good, "event_action": "resolve", "dedup_key": None})
    assert event_problems({**good, "payload": {**good["payload"], "severity": "high"}})
    assert event_problems({**good, "payload": {**good["payload"], "summary": "s" * 1025}})
    assert event_problems({**good, "payload": {**good["payload"], "source": ""}})
    assert event_problems({**good, "links": [{"url": "https://x"}]})
    assert event_problems({**good, "dedup": "typo"}) == ["unknown fields ['dedup']"]


@pytest.mark.parametrize(
    ("status", "retry_after", "error", "message"),
    [
        (429, 30, RetryAfter, "HTTP 429 Too Many Requests; retry after 30s"),
        (429, None, TransientDeliveryError, "HTTP 429 Too Many Requests"),
        (500, None, TransientDeliveryError, "HTTP 500 Internal Server Error"),
        (502, None, TransientDeliveryError, "HTTP 502 Bad Gateway"),
        (403, None, PermanentDeliveryError, "HTTP 403 Forbidden"),
    ],
)
async def test_failures(
    session: aiohttp.ClientSession,
    pagerduty: PagerDutyReceiver,
    status: int,
    retry_after: float | None,
    error: type[Exception],
    message: str,
) -> None:
    pagerduty.fail_next(status, retry_after=retry_after)
    with pytest.raises(error) as raised:
        await deliver(session, channel(pagerduty.url), FIRED)
    assert str(raised.value) == message
    assert isinstance(raised.value, RetryAfter) == (retry_after is not None)
    await deliver(session, channel(pagerduty.url), FIRED)
    assert len(pagerduty.events) == 1


async def test_a_slow_answer_is_a_transient_timeout(
    session: aiohttp.ClientSession, pagerduty: PagerDutyReceiver
) -> None:
    pagerduty.delay_s = 1.0
    with pytest.raises(TransientDeliveryError, match=r"timed out after 0\.2s"):
        await deliver(session, channel(pagerduty.url, timeout=0.2), FIRED)


async def test_failures_repeat_as_scripted_then_clear(
    session: aiohttp.ClientSession, pagerduty: PagerDutyReceiver
) -> None:
    pagerduty.fail_next(500, times=2)
    for _ in range(2):
        with pytest.raises(TransientDeliveryError):
            await deliver(session, channel(pagerduty.url), FIRED)
    assert (await deliver(session, channel(pagerduty.url), FIRED)).status_code == 202
    assert len(pagerduty.received) == 3
    assert pagerduty.accepted == pagerduty.received[2:]
    assert pagerduty.rejected == []  # scripted failures are not format rejections


def test_an_escalation_step_triggers_on_the_alerts_key() -> None:
    step = dataclasses.replace(
        FIRED,
        event_type="EscalationStepFired",
        payload={
            "event": "EscalationStepFired",
            "summary": "Paging step 2 for cpu-high",
            "page": {"fingerprint": "fp-cpu-high-db-1", "rule": "cpu-high", "severity": "critical"},
        },
    )
    event = event_for(channel("https://events.pagerduty.com/v2/enqueue"), step)
    assert (event["event_action"], event["dedup_key"]) == ("trigger", "fp-cpu-high-db-1")
    assert event["payload"]["severity"] == "critical"
    assert event_problems(event) == []
