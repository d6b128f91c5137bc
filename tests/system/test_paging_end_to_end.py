"""Paging people on real local receivers, with Vigil started as a user starts it.

A critical sample posts to Slack (a bot, so the message can be updated), triggers
PagerDuty (configured from the seed's environment variables) and sends an email;
the escalation policy pages whoever is on call (an override decides who), then the
next step after its delay; acknowledging in Vigil acknowledges PagerDuty and updates
the Slack message. A kill -9 of the notifier during a storm loses no notification
and records no second success.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.bus import EventBus, connect
from shared.events import MessageDeadLettered, NotificationDelivered, NotificationFailed
from shared.natsauth import CLI_USER, client_credentials
from tests.receivers.pagerduty import TEST_ROUTING_KEY, PagerDutyReceiver
from tests.receivers.slack import TEST_CHANNEL, TEST_TOKEN, SlackReceiver
from tests.receivers.smtp import SmtpReceiver
from tests.system.conftest import VigilProcess, WebhookReceiver, shut_down, start_vigil
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

BOB_SLACK = "U0BOB0001"


@pytest.fixture
async def slack() -> AsyncIterator[SlackReceiver]:
    async with SlackReceiver() as receiver:
        yield receiver


@pytest.fixture
async def pagerduty() -> AsyncIterator[PagerDutyReceiver]:
    async with PagerDutyReceiver() as receiver:
        yield receiver


@pytest.fixture
async def smtp(tmp_path: Path) -> AsyncIterator[SmtpReceiver]:
    async with SmtpReceiver(
        tmp_path / "smtp-cert", tls="starttls", username="vigil", password="mail-pass"
    ) as receiver:
        yield receiver


def paging_config(slack: SlackReceiver) -> str:
    now = datetime.now(UTC)
    return f"""
  - name: slack-bot
    type: slack
    token: {TEST_TOKEN}
    channel: {TEST_CHANNEL}
    api_url: {slack.api_url}
route:
  routes:
    - matchers: ['severity="critical"', 'rule="CheckoutLatency"']
      escalation_policy: checkout
contacts:
  - name: alice
    methods: [{{channel: env-email, address: alice@example.com}}]
  - name: bob
    methods: [{{channel: slack-bot, address: {BOB_SLACK}}}]
  - name: carol
    methods: [{{channel: env-email, address: carol@example.com}}]
schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - name: weekly
        users: [alice]
        rotation: weekly
        start: "2026-01-05"
    overrides:
      - user: bob
        start: "{(now - timedelta(hours=1)).isoformat()}"
        end: "{(now + timedelta(hours=1)).isoformat()}"
escalation_policies:
  - name: checkout
    ack_timeout: 1h
    steps:
      - notify: [{{schedule: primary}}]
      - delay: 4s
        notify: [{{user: carol}}]
      - delay: 60s
        notify: [{{channel: ops-webhook}}]
"""


@pytest.fixture
def vigil_paging(
    tmp_path: Path,
    webhook_receiver: WebhookReceiver,
    slack: SlackReceiver,
    pagerduty: PagerDutyReceiver,
    smtp: SmtpReceiver,
) -> Iterator[VigilProcess]:
    env = {
        "PAGERDUTY_API_KEY": TEST_ROUTING_KEY,
        "PAGERDUTY_EVENTS_URL": pagerduty.url,
        "ALERT_EMAIL_SMTP_HOST": "127.0.0.1",
        "ALERT_EMAIL_SMTP_PORT": str(smtp.port),
        "ALERT_EMAIL_SMTP_TLS": "starttls",
        "ALERT_EMAIL_USERNAME": "vigil",
        "ALERT_EMAIL_PASSWORD": "mail-pass",
        "ALERT_EMAIL_FROM": "vigil@example.com",
        "ALERT_EMAIL_TO": "oncall@example.com",
        "ALERT_EMAIL_CA_FILE": str(smtp.cert_file),
    }
    vigil = start_vigil(tmp_path, webhook_receiver, env, paging_config(slack))
    try:
        yield vigil
    finally:
        shut_down(vigil)


def mails_to(smtp: SmtpReceiver, address: str) -> list[Any]:
    return [m for m in smtp.received if address in m.rcpt_tos]


async def test_a_critical_alert_pages_people_escalates_and_an_ack_reaches_every_channel(
    vigil_paging: VigilProcess,
    slack: SlackReceiver,
    pagerduty: PagerDutyReceiver,
    smtp: SmtpReceiver,
) -> None:
    async with vigil_paging.client() as client:
        sample = [{"name": "checkout_latency_ms", "value": 1500.0, "labels": {"host": "web-1"}}]
        response = await client.post("/api/monitoring/metrics", json=sample)
        assert response.status_code == 202, response.text

        # the channel posts: Slack (a message of its own in the channel), PagerDuty, email
        await eventually(lambda: len(slack.top_level) >= 1, 20, "the Slack message")

        def alert_triggers() -> list[dict[str, Any]]:  # not the incident's trigger
            return [
                e
                for e in pagerduty.events
                if e["event_action"] == "trigger" and "firing" in e["payload"]["summary"]
            ]

        await eventually(alert_triggers, 20, "the PagerDuty trigger")

        def alert_mails() -> list[Any]:  # the incident's mail may come first, side by side
            return [
                m
                for m in mails_to(smtp, "oncall@example.com")
                if "CheckoutLatency firing" in m.header("Subject")
            ]

        await eventually(alert_mails, 20, "the email")
        [trigger] = alert_triggers()
        assert trigger["event_action"] == "trigger"
        assert trigger["routing_key"] == TEST_ROUTING_KEY
        assert trigger["payload"]["severity"] == "critical"
        dedup = trigger["dedup_key"]
        mail = alert_mails()[0]
        assert mail.tls and mail.user == "vigil"
        assert "CheckoutLatency" in mail.header("Subject")
        assert "1500" in mail.part("text/plain") and "<html" in mail.part("text/html").lower()
        assert slack.rejected == [] and pagerduty.rejected == [] and smtp.rejected == []

        # step 1 pages whoever is on call: the override makes it bob, on Slack, not alice
        await eventually(
            lambda: any(m.channel.startswith("D") for m in slack.top_level), 20, "bob's page"
        )
        assert not mails_to(smtp, "alice@example.com")
        # step 2, four seconds later and not acknowledged: carol by email
        paged_bob = time.monotonic()
        await eventually(lambda: mails_to(smtp, "carol@example.com"), 20, "carol's page")
        assert time.monotonic() - paged_bob >= 2.0

        alerts = (await client.get("/api/monitoring/alerts", params={"status": "firing"})).json()
        [alert] = [a for a in alerts["items"] if a["rule"] == "CheckoutLatency"]
        response = await client.post(
            f"/api/monitoring/alerts/{alert['id']}/ack", json={"comment": "on it"}
        )
        assert response.status_code == 200, response.text

        # acknowledged in Vigil: acknowledged in PagerDuty, the Slack message updated
        await eventually(
            lambda: pagerduty.alerts[dedup].status == "acknowledged", 20, "the PagerDuty ack"
        )
        # the alert's own message in the channel (the incident's is another subject and
        # may have been posted first, side by side)
        [first] = [
            m
            for m in slack.top_level
            if m.channel == TEST_CHANNEL
            and "CheckoutLatency firing" in str((m.versions or [m.body])[0].get("text"))
        ]
        await eventually(
            lambda: len(slack.message(first.channel, first.ts).versions) >= 1, 20, "the update"
        )
        assert slack.thread(first.channel, first.ts), "a reply in the message's thread"

        # the timeline shows who was paged, how, and the outcome
        detail = (await client.get(f"/api/monitoring/alerts/{alert['id']}")).json()
        kinds = [entry["type"] for entry in detail["timeline"]]
        assert "EscalationStepFired" in kinds and "NotificationDelivered" in kinds
        assert kinds.count("EscalationStepFired") == 2  # stopped by the acknowledgement
    await asyncio.sleep(1.0)
    triggers = [e for e in pagerduty.alerts[dedup].events if e["event_action"] == "trigger"]
    assert len(triggers) == 1  # one incident in PagerDuty for the alert, never a second


STORM = 150


async def test_kill_9_of_the_notifier_in_a_storm_loses_nothing_and_doubles_no_success(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    extra = """
route:
  group_by: [rule]
  group_interval: 1s
"""
    vigil = start_vigil(tmp_path, webhook_receiver, {}, extra)
    try:
        async with vigil.client() as client:
            killed = False
            for n in range(STORM):
                sample = {
                    "name": "checkout_latency_ms",
                    "value": 1500.0,
                    "labels": {"host": f"web-{n}"},
                }
                response = await client.post("/api/monitoring/metrics", json=[sample])
                assert response.status_code == 202, response.text
                if n == STORM // 3 and not killed:
                    os.kill(vigil.service_pid("notifier"), signal.SIGKILL)
                    killed = True

            def fired_seen() -> int:
                ids = {p["event_id"] for p in webhook_receiver.of_type("AlertFired")}
                for payload in webhook_receiver.received:
                    ids |= {d["event_id"] for d in payload.get("digest", [])}
                return len(ids)

            await eventually(lambda: fired_seen() >= STORM, 90, "every alert at the receiver")

        nats_line = next(line for line in vigil.lines if "nats ready" in line)
        nats_url = nats_line.split("(")[1].rstrip(")")
        nc = await connect(nats_url, "storm-check", client_credentials(vigil.data_dir, CLI_USER))
        try:
            bus = EventBus(nc)

            async def settled() -> list[Any]:
                return [r.event async for r in bus.replay("NOTIFICATIONS")]

            async def every_alert_settled() -> bool:
                fired = {
                    e.event_id
                    for e in await settled()
                    if isinstance(e, NotificationDelivered) and e.event_type == "AlertFired"
                }
                return len(fired) >= STORM

            await eventually(every_alert_settled, 30, "a success recorded for every alert")
            outcomes = await settled()
            dead = [r.event async for r in bus.replay("DEADLETTERS")]
        finally:
            await nc.close()
        successes = Counter(
            e.aggregate_id for e in outcomes if isinstance(e, NotificationDelivered)
        )
        assert max(successes.values()) == 1  # never a second success for one delivery
        assert not [e for e in outcomes if isinstance(e, NotificationFailed)]
        assert not [d for d in dead if isinstance(d, MessageDeadLettered)]
        # the storm went out as digests: far fewer messages than notifications
        assert len(webhook_receiver.received) < len(successes)
    finally:
        shut_down(vigil)
