"""Message templates: the channel's own title and text, sandboxed, with sound defaults."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import pytest

from services.notifier.channels import slack
from services.notifier.templates import (
    dashboard_url,
    digest_lines,
    headline,
    runbook_url,
    text_for,
    title_for,
    validate_template,
)
from shared.channelconfig import MessageTemplate, SlackChannel
from shared.errors import PermanentDeliveryError
from shared.outbound import OutboundGuard, OutboundPolicy
from tests.notifier.channels.samples import (
    ACKNOWLEDGED,
    ESCALATED,
    FIRED,
    INCIDENT,
    INCIDENT_RESOLVED,
    RESOLVED,
    RUNBOOK,
    with_digest,
)
from tests.receivers.slack import SlackReceiver


def channel(title: str = "", text: str = "") -> SlackChannel:
    template = MessageTemplate(title=title, text=text) if title or text else None
    return SlackChannel(name="ops", type="slack", url="https://hooks.example/x", template=template)


def unchecked(title: str = "", text: str = "") -> SlackChannel:
    """A channel whose template skipped config validation (an old stored config, say)."""
    template = MessageTemplate.model_construct(title=title, text=text)
    return channel().model_copy(update={"template": template})


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with OutboundGuard(OutboundPolicy()).session() as client:
        yield client


async def test_a_channels_templates_shape_the_message(session: aiohttp.ClientSession) -> None:
    custom = channel(
        title="{{ alert.rule | upper }} on {{ alert.labels.host }}",
        text="{{ summary }}\nRunbook: {{ links.runbook }}"
        "{% if digest %} (+{{ digest|length }}){% endif %}",
    )
    async with SlackReceiver() as receiver:
        hooked = custom.model_copy(update={"url": receiver.url})
        await slack.deliver(session, hooked, with_digest(FIRED, 2))
    assert receiver.rejected == []
    [attachment] = receiver.webhook_messages[0]["attachments"]
    assert attachment["blocks"][0]["text"]["text"] == "CPU-HIGH on db-1"
    body = attachment["blocks"][1]["text"]["text"]
    assert body == f"{FIRED.payload['summary']}\nRunbook: {RUNBOOK} (+2)"


def test_missing_values_render_empty_and_an_empty_result_falls_back() -> None:
    assert title_for(channel(title="[{{ nothing }}{{ alert.nope.deeper }}]"), FIRED) == "[]"
    assert title_for(channel(title="{{ nothing }}"), FIRED) == "[CRITICAL] cpu-high firing"
    assert text_for(channel(text="{{ incident.title }}"), FIRED) == FIRED.payload["summary"]


def test_defaults() -> None:
    assert text_for(channel(), FIRED) == FIRED.payload["summary"]
    assert [headline(n.payload) for n in (FIRED, ESCALATED, ACKNOWLEDGED, RESOLVED)] == [
        "[CRITICAL] cpu-high firing",
        "[CRITICAL] cpu-high firing escalated",
        "[ACKNOWLEDGED] cpu-high",
        "[RESOLVED] cpu-high",
    ]
    assert headline(INCIDENT.payload) == "[INFO] Incident: API down"
    assert headline(INCIDENT_RESOLVED.payload) == "[RESOLVED] Incident: API down"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ alert.__class__.__init__.__globals__ }}",
        "{{ summary.format.__globals__ }}",
        "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_the_sandbox_refuses_internals(template: str) -> None:
    with pytest.raises(PermanentDeliveryError, match=r"^template ops\.title is not allowed: "):
        title_for(channel(title=template), FIRED)


async def test_a_refused_template_sends_nothing(session: aiohttp.ClientSession) -> None:
    async with SlackReceiver() as receiver:
        bad = channel(text="{{ ''.__class__ }}").model_copy(update={"url": receiver.url})
        with pytest.raises(PermanentDeliveryError, match=r"template ops\.text"):
            await slack.deliver(session, bad, FIRED)
    assert receiver.received == []


def test_errors_name_the_template() -> None:
    with pytest.raises(PermanentDeliveryError) as raised:
        text_for(channel(text="{{ 1 / 0 }}"), FIRED)
    assert str(raised.value) == "template ops.text failed: ZeroDivisionError: division by zero"
    with pytest.raises(PermanentDeliveryError, match=r"^template ops\.title: line 2: "):
        title_for(unchecked(title="ok\n{{ summary "), FIRED)


def test_validate_template_names_the_syntax_error() -> None:
    validate_template("{{ alert.rule }} {% if digest %}{{ digest|length }}{% endif %}")
    with pytest.raises(ValueError, match=r"^line 1: Unexpected end of template"):
        validate_template("{% if summary %}x")
    with pytest.raises(ValueError, match=r"^line 3: "):
        validate_template("a\nb\n{{ summary }")


def test_digest_lines_are_a_short_list() -> None:
    assert digest_lines(FIRED) == []
    assert digest_lines(with_digest(FIRED, 1))[0] == "1 more alert for cpu-high"
    lines = digest_lines(with_digest(FIRED, 12))
    assert lines[0] == "12 more alerts for cpu-high"
    assert len(lines) == 7
    assert lines[1].startswith("• CRITICAL cpu-high firing")
    assert lines[-1] == "… and 7 more"
    mixed = dataclasses.replace(FIRED, digest=(INCIDENT.payload, FIRED.payload))
    assert digest_lines(mixed)[0] == "2 more notifications for cpu-high"


def test_links(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_PUBLIC_URL", "https://vigil.example.com/")
    assert dashboard_url(FIRED.payload) == "https://vigil.example.com/monitoring#/alerts/alert-7"
    assert (
        dashboard_url(INCIDENT.payload) == "https://vigil.example.com/monitoring#/incidents/inc-3"
    )
    assert runbook_url(FIRED.payload) == RUNBOOK
    alert = {**FIRED.payload["alert"], "labels": {"runbook_url": "javascript:alert(1)"}}
    assert runbook_url({**FIRED.payload, "alert": alert}) is None
    assert runbook_url(INCIDENT.payload) is None


@pytest.mark.parametrize(
    ("template", "problem"),
    [("{{ title ", "template line 1"), ("{{" + "(" * 1990 + "}}", "nests too deeply")],
)
def test_a_template_that_cannot_compile_is_refused_with_the_channel(
    template: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        MessageTemplate(title=template)
