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
from tests.gateway.test_rules_api import ADMIN, RULES, VIEWER, config_file, http  # noqa: F401
from tests.notifier.conftest import ReceiverFactory, receiver_factory  # noqa: F401
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
