"""Channels over HTTP against a real gateway, notifier and alerts on a real nats-server: the
secret goes in, is never shown, is never stored in clear, and signs the next page."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from services.notifier.channels.webhook import verify
from shared import subjects
from shared.bus import EventBus
from shared.events import Sample, SamplesIngested
from tests.gateway.identities import ADMIN_ACTOR
from tests.gateway.test_rules_api import ADMIN, RULES, VIEWER, config_file, http  # noqa: F401
from tests.notifier.conftest import ReceiverFactory, Reply, receiver_factory  # noqa: F401
from tests.waiting import eventually

CHANNELS = "/api/monitoring/channels"
CLEAR = "gateway-test-secret-in-clear"


def files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_an_api_rule_pages_through_an_api_channel_signed_with_a_secret_kept_encrypted(
    http: httpx.AsyncClient,  # noqa: F811
    bus: EventBus,
    receiver_factory: ReceiverFactory,  # noqa: F811
    tmp_path: Path,
) -> None:
    receiver = await receiver_factory()
    channel = {
        "name": "pager",
        "type": "webhook",
        "url": receiver.url,
        "secret": CLEAR,
        "events": ["AlertFired"],
        "timeout": "5s",
    }
    assert (await http.post(CHANNELS, json=channel, headers=VIEWER)).status_code == 403
    created = await http.post(CHANNELS, json=channel, headers=ADMIN)
    assert created.status_code == 201, created.text
    shown = created.json()
    assert (shown["secret"], shown["timeout"], shown["source"]) == ("(set)", "5s", "api")
    rule = {"name": "DiskHot", "metric": "disk", "critical": 90}
    assert (await http.post(RULES, json=rule, headers=ADMIN)).status_code == 201

    sample = Sample(name="disk", value=97, labels={"host": "db-1"})
    await bus.publish(
        subjects.samples("test"),
        SamplesIngested(aggregate_id="test", samples=[sample], received_at=time.time()),
    )
    await eventually(lambda: receiver.requests, what="the page")
    [page] = receiver.requests
    assert page.json()["alert"]["rule"] == "DiskHot"
    assert verify(CLEAR, page.headers["X-Vigil-Signature-256"], page.body)

    # a PUT that sends the mask back keeps the secret
    kept = await http.put(
        f"{CHANNELS}/pager", json={**channel, "secret": "(set)", "timeout": 3}, headers=ADMIN
    )
    assert (kept.status_code, kept.json()["timeout"], kept.json()["secret"]) == (200, "3s", "(set)")
    listed = (await http.get(CHANNELS, headers=VIEWER)).json()["items"]
    assert [(c["name"], c["secret"]) for c in listed] == [("pager", "(set)")]
    assert CLEAR not in (await http.get(f"{CHANNELS}/pager", headers=VIEWER)).text

    # no file under the test's directory holds the secret in clear: not the event log,
    # not the gateway's read model, not the notifier's ledger
    assert files_holding(tmp_path, CLEAR.encode()) == []

    assert (await http.delete(f"{CHANNELS}/pager", headers=ADMIN)).status_code == 204
    assert (await http.get(f"{CHANNELS}/pager", headers=VIEWER)).status_code == 404


async def test_a_test_message_reaches_the_receiver_or_names_its_error(
    http: httpx.AsyncClient,  # noqa: F811
    receiver_factory: ReceiverFactory,  # noqa: F811
) -> None:
    receiver = await receiver_factory(Reply(status=500))
    channel = {"name": "ops", "type": "webhook", "url": receiver.url, "secret": CLEAR}
    assert (await http.post(CHANNELS, json=channel, headers=ADMIN)).status_code == 201
    test = f"{CHANNELS}/ops/test"
    assert (await http.post(test, headers=VIEWER)).status_code == 403

    # the receiver fails: 502 naming the channel and the receiver's answer, tried once
    failed = await http.post(test, headers=ADMIN)
    assert failed.status_code == 502, failed.text
    assert failed.headers["content-type"] == "application/problem+json"
    assert "'ops'" in failed.json()["detail"] and "HTTP 500" in failed.json()["detail"]
    assert len(receiver.requests) == 1

    sent = await http.post(test, headers=ADMIN)
    assert sent.status_code == 200, sent.text
    result = sent.json()
    assert (result["channel"], result["delivered"], result["status_code"]) == ("ops", True, 200)
    assert result["latency_ms"] > 0 and result["error"] == ""
    [_, request] = receiver.requests
    body = request.json()
    assert body["summary"] == f"Vigil test message from {ADMIN_ACTOR}"
    assert (body["event"], body["test"]) == ("ChannelTest", True)
    assert verify(CLEAR, request.headers["X-Vigil-Signature-256"], request.body)
    # outside the ledger: nothing was recorded as a notification
    ledger = await http.get("/api/monitoring/notifications", headers=ADMIN)
    assert ledger.json()["items"] == []

    missing = await http.post(f"{CHANNELS}/nope/test", headers=ADMIN)
    assert (missing.status_code, missing.json()["field"]) == (404, "name")


async def test_every_kind_is_typed_and_its_credentials_are_masked_and_kept(
    http: httpx.AsyncClient,  # noqa: F811
    tmp_path: Path,
) -> None:
    token, password = "xoxb-never-shown-in-clear", "smtp-never-shown-in-clear"
    slack = {
        "name": "slack-bot",
        "type": "slack",
        "token": token,
        "channel": "C0OPS",
        "api_url": "http://127.0.0.1:9/api",
    }
    email = {
        "name": "mail",
        "type": "email",
        "host": "127.0.0.1",
        "port": 2525,
        "password": password,
        "username": "vigil",
        "from": "vigil@example.com",
        "to": ["oncall@example.com"],
        "rate": 2,
    }
    for body in (slack, email):
        created = await http.post(CHANNELS, json=body, headers=ADMIN)
        assert created.status_code == 201, created.text
    shown = {c["name"]: c for c in (await http.get(CHANNELS, headers=VIEWER)).json()["items"]}
    assert (shown["slack-bot"]["token"], shown["slack-bot"]["url"]) == ("(set)", "")
    assert (shown["mail"]["password"], shown["mail"]["from"]) == ("(set)", "vigil@example.com")
    assert shown["mail"]["rate"] == 2 and shown["mail"]["retry_for"] == "6h"

    # a PUT with the mask keeps the token; the new channel id is used
    kept = await http.put(
        f"{CHANNELS}/slack-bot", json={**slack, "token": "(set)", "channel": "C0NEW"}, headers=ADMIN
    )
    assert (kept.status_code, kept.json()["channel"], kept.json()["token"]) == (
        200,
        "C0NEW",
        "(set)",
    )
    assert files_holding(tmp_path, token.encode()) == []
    assert files_holding(tmp_path, password.encode()) == []

    # each kind's own rules, named by field
    both = await http.post(
        CHANNELS, json={**slack, "name": "x", "url": "https://hooks.example/x"}, headers=ADMIN
    )
    assert both.status_code == 422 and "not both" in both.text
    bad_to = await http.post(CHANNELS, json={**email, "name": "y", "to": ["nope"]}, headers=ADMIN)
    assert bad_to.status_code == 422 and "to[0]" in bad_to.text
    unknown = await http.post(CHANNELS, json={**email, "name": "z", "type": "fax"}, headers=ADMIN)
    assert unknown.status_code == 422 and "type" in unknown.text
