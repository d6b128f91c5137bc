"""The email transport against a real SMTP server (aiosmtpd) with STARTTLS, implicit TLS
and AUTH on a throw-away certificate."""

from __future__ import annotations

import dataclasses
import email.utils
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.notifier.channels.email import deliver, message_for, thread_root
from services.notifier.domain import Notification, notification_for
from shared.channelconfig import EmailChannel, MessageTemplate
from shared.errors import PermanentDeliveryError, TransientDeliveryError
from shared.events import AlertFired, AlertResolved, IncidentOpened
from shared.natsserver import free_port
from shared.outbound import OutboundGuard, OutboundPolicy, parse_networks
from tests.receivers.smtp import SmtpReceiver, Tls

FIRED = AlertFired(
    aggregate_id="alert-7",
    rule="cpu-high",
    fingerprint="fp-cpu-web1",
    metric="cpu",
    labels={"host": "web1", "runbook_url": "https://runbooks.example/cpu"},
    severity="critical",
    value=97.5,
    threshold=90,
    summary="<script>alert(1)</script> & more",
)
RESOLVED = AlertResolved(
    aggregate_id="alert-7",
    rule="cpu-high",
    fingerprint="fp-cpu-web1",
    metric="cpu",
    labels={"host": "web1"},
    severity="critical",
    value=40,
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with OutboundGuard(OutboundPolicy()).session() as client:
        yield client


@pytest.fixture
async def smtp(tmp_path: Path) -> AsyncIterator[SmtpReceiver]:
    async with SmtpReceiver(
        tmp_path / "certs", tls="starttls", username="vigil", password="pw"
    ) as s:
        yield s


def channel(receiver: SmtpReceiver, **changes: Any) -> EmailChannel:
    fields: dict[str, Any] = {
        "name": "mail",
        "type": "email",
        "host": "localhost",
        "port": receiver.port,
        "tls": receiver.tls,
        "username": receiver.username or "",
        "password": receiver.password or "",
        "from": "Vigil <vigil@example.org>",
        "to": ["oncall@example.org", "lead@example.org"],
        "ca_file": str(receiver.cert_file),
        "timeout": 3,
    }
    fields.update(changes)
    return EmailChannel.model_validate(fields)


def note(event: Any, **changes: Any) -> Notification:
    return dataclasses.replace(notification_for(event, "mail"), **changes)


async def test_starttls_with_auth_delivers_a_multipart_message(
    session: aiohttp.ClientSession, smtp: SmtpReceiver
) -> None:
    receipt = await deliver(session, channel(smtp), note(FIRED))
    [mail] = smtp.received
    assert mail.tls and mail.user == "vigil"
    assert mail.rcpt_tos == ["oncall@example.org", "lead@example.org"]
    assert mail.mail_from == "vigil@example.org"
    assert mail.header("Subject").startswith("CRITICAL cpu-high firing: cpu=97.5")
    assert mail.header("To") == "oncall@example.org, lead@example.org"
    assert email.utils.parsedate_to_datetime(mail.header("Date")) is not None
    # the opener is the thread's root
    assert mail.header("Message-ID") == receipt.thread
    assert receipt.thread == thread_root("mail", note(FIRED))
    assert not mail.header("In-Reply-To")
    assert "web1" in mail.text and "https://runbooks.example/cpu" in mail.text
    assert "#/alerts/alert-7" in mail.text
    # the HTML part escapes what came from outside
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in mail.html
    assert '<a href="https://runbooks.example/cpu">' in mail.html


async def test_updates_reply_to_the_root_with_or_without_a_stored_thread(
    session: aiohttp.ClientSession, smtp: SmtpReceiver
) -> None:
    opened = await deliver(session, channel(smtp), note(FIRED))
    await deliver(session, channel(smtp), note(RESOLVED))  # no stored thread: derived
    await deliver(session, channel(smtp), note(RESOLVED, thread="<given-root@example.org>"))
    first, derived, stored = smtp.received
    assert derived.header("In-Reply-To") == derived.header("References") == opened.thread
    assert derived.header("Message-ID") != first.header("Message-ID")
    assert derived.header("Subject").startswith("RESOLVED cpu-high")
    assert stored.header("In-Reply-To") == "<given-root@example.org>"
    assert stored.header("References") == "<given-root@example.org>"


def test_message_ids_are_stable_per_delivery_and_differ_per_channel() -> None:
    mail = EmailChannel.model_validate(
        {"name": "mail", "type": "email", "host": "h", "from": "a@b.c", "to": ["x@y.z"]}
    )
    other = mail.model_copy(update={"name": "mail-2"})
    first, root = message_for(mail, note(RESOLVED))
    again, _ = message_for(mail, note(RESOLVED))
    assert first["Message-ID"] == again["Message-ID"]  # a redelivery keeps its id
    assert root == thread_root("mail", note(FIRED))
    _, other_root = message_for(other, note(FIRED))
    assert other_root != root
    incident = note(IncidentOpened(aggregate_id="inc 1/2", title="API down", severity="critical"))
    opened, incident_root = message_for(mail, incident)
    assert opened["Message-ID"] == incident_root
    assert incident_root is not None and " " not in incident_root and "/" not in incident_root


async def test_a_recipient_overrides_the_channel_addresses(
    session: aiohttp.ClientSession, smtp: SmtpReceiver
) -> None:
    await deliver(session, channel(smtp), note(FIRED, recipient="alice@example.org"))
    [mail] = smtp.received
    assert mail.rcpt_tos == ["alice@example.org"]
    assert mail.header("To") == "alice@example.org"


async def test_template_title_and_digest(
    session: aiohttp.ClientSession, smtp: SmtpReceiver
) -> None:
    template = MessageTemplate(title="{{ alert.rule }} on {{ alert.labels.host }}", text="")
    digest = ({"event": "AlertFired", "summary": "cpu-high on web2"},)
    await deliver(session, channel(smtp, template=template), note(FIRED, digest=digest))
    [mail] = smtp.received
    assert mail.header("Subject") == "cpu-high on web1"
    assert "1 more alert" in mail.text or "1 more notification" in mail.text
    assert "cpu-high on web2" in mail.text and "cpu-high on web2" in mail.html


@pytest.mark.parametrize("tls", ["ssl", "none"])
async def test_implicit_tls_and_plain(
    session: aiohttp.ClientSession, tmp_path: Path, tls: Tls
) -> None:
    async with SmtpReceiver(tmp_path, tls=tls, username="u", password="p") as server:
        await deliver(session, channel(server), note(FIRED))
        [mail] = server.received
    assert mail.tls is (tls == "ssl")
    assert mail.user == "u"


async def test_no_auth_when_no_username(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    async with SmtpReceiver(tmp_path, tls="starttls") as server:
        await deliver(session, channel(server), note(FIRED))
        [mail] = server.received
    assert mail.user is None and mail.tls


@pytest.mark.parametrize(
    ("code", "stage", "error"),
    [
        (421, "MAIL", TransientDeliveryError),
        (451, "DATA", TransientDeliveryError),
        (450, "RCPT", TransientDeliveryError),
        (550, "RCPT", PermanentDeliveryError),
        (554, "DATA", PermanentDeliveryError),
    ],
)
async def test_reply_codes_map_to_transient_and_permanent(
    session: aiohttp.ClientSession, smtp: SmtpReceiver, code: int, stage: Any, error: type
) -> None:
    smtp.fail_next(code, stage=stage)
    one = channel(smtp, to=["oncall@example.org"])
    with pytest.raises(error, match=f"SMTP {code}|closed the connection") as caught:
        await deliver(session, one, note(FIRED))
    assert "Mailbox" not in str(caught.value)  # the server's own text is not echoed
    assert not smtp.received
    await deliver(session, one, note(FIRED))  # the next try goes through
    assert len(smtp.received) == 1


async def test_one_recipient_deferred_is_tried_again_one_refused_is_not(
    session: aiohttp.ClientSession, smtp: SmtpReceiver
) -> None:
    smtp.fail_next(450, stage="RCPT")
    with pytest.raises(TransientDeliveryError, match="SMTP 450: the server deferred 1 of 2"):
        await deliver(session, channel(smtp), note(FIRED))
    smtp.received.clear()
    smtp.fail_next(550, stage="RCPT")
    await deliver(session, channel(smtp), note(FIRED))
    [mail] = smtp.received
    assert mail.rcpt_tos == ["lead@example.org"]


async def test_a_wrong_password_is_permanent(
    session: aiohttp.ClientSession, smtp: SmtpReceiver
) -> None:
    with pytest.raises(PermanentDeliveryError, match="SMTP 535: authentication failed") as caught:
        await deliver(session, channel(smtp, password="wrong"), note(FIRED))
    assert "wrong" not in str(caught.value)
    assert smtp.auth_failures >= 1 and not smtp.received


async def test_an_untrusted_certificate_is_not_accepted(
    session: aiohttp.ClientSession, smtp: SmtpReceiver
) -> None:
    with pytest.raises(TransientDeliveryError, match="certificate not trusted"):
        await deliver(session, channel(smtp, ca_file=""), note(FIRED))
    assert not smtp.received


async def test_a_slow_server_times_out(session: aiohttp.ClientSession, smtp: SmtpReceiver) -> None:
    smtp.delay_s = 2.0
    with pytest.raises(TransientDeliveryError, match=r"timed out after 0\.5s"):
        await deliver(session, channel(smtp, timeout=0.5), note(FIRED))


async def test_nobody_listening_is_transient(
    session: aiohttp.ClientSession, smtp: SmtpReceiver
) -> None:
    with pytest.raises(TransientDeliveryError, match="cannot connect"):
        await deliver(session, channel(smtp, port=free_port()), note(FIRED))


async def test_the_outbound_policy_applies_before_connecting(smtp: SmtpReceiver) -> None:
    policy = OutboundPolicy(deny=parse_networks(["127.0.0.0/8", "::1/128"]))
    async with OutboundGuard(policy).session() as guarded:
        for host in ("localhost", "127.0.0.1", "0x7f000001"):
            with pytest.raises(PermanentDeliveryError, match="refused by the outbound policy"):
                await deliver(guarded, channel(smtp, host=host), note(FIRED))
    assert smtp.transactions == 0
    metadata = channel(smtp, host="169.254.169.254")
    async with OutboundGuard(OutboundPolicy()).session() as guarded:
        with pytest.raises(PermanentDeliveryError, match="link-local"):
            await deliver(guarded, metadata, note(FIRED))
