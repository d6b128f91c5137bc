"""The alerts API shows why an alert pages nobody, filters by it, and explains why an
alert paged or did not — from the events of the alerts service, the notifier and its
escalation, all running on one nats-server with a real webhook receiver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.gateway.app import Gateway
from services.notifier.app import build as build_notifier
from shared.bus import EventBus
from shared.config import VigilConfig
from shared.settings import Settings
from tests.alerts.suppression_rig import Clock, Rig, Span
from tests.conftest import RuntimeFactory
from tests.notifier.conftest import ReceiverFactory, receiver_factory  # noqa: F401
from tests.waiting import eventually

HOUR = timedelta(hours=1)


def config(hook: str) -> VigilConfig:
    return VigilConfig.model_validate(
        {
            "rules": [
                {"name": "HighCPU", "metric": "cpu", "warning": 70, "critical": 90},
                {"name": "ProdLatency", "metric": "latency", "warning": 1}
                | {"labels": {"env": "prod"}},
            ],
            "channels": [{"name": "hook", "type": "webhook", "url": hook}],
            "route": {"channels": ["hook"], "escalation_policy": "ops"},
            "escalation_policies": [
                {"name": "ops", "steps": [{"delay": 0, "notify": [{"channel": "hook"}]}]}
            ],
        }
    )


@pytest.fixture
def rig(bus: EventBus, settings: Settings, start_service: RuntimeFactory) -> Rig:
    return Rig(bus, settings, start_service, Clock(datetime.now(UTC).replace(microsecond=0)))


async def alert_of(client: httpx.AsyncClient, host: str, **query: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        listed = await client.get("/api/monitoring/alerts", params=query)
        found = [a for a in listed.json()["items"] if a["labels"].get("host") == host]
        return found[0] if found else None

    found: dict[str, Any] = await eventually(probe, what=f"the alert of {host}")
    return found


async def explained(
    client: httpx.AsyncClient, alert_id: str, verdict: str, *whats: str
) -> dict[str, Any]:
    """The explanation once its verdict starts with ``verdict`` and it has every step in
    ``whats`` (the projections of three streams catch up in any order)."""

    async def probe() -> dict[str, Any] | None:
        answer = await client.get(f"/api/monitoring/alerts/{alert_id}/explain")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        seen = {step["what"] for step in body["steps"]}
        done = body["verdict"].startswith(verdict) and seen.issuperset(whats)
        return body if done else None

    found: dict[str, Any] = await eventually(probe, what=f"verdict {verdict!r}")
    return found


async def test_why_a_silenced_alert_did_not_page_and_why_it_paged_later(
    rig: Rig,
    gateway: Gateway,
    client: httpx.AsyncClient,
    receiver_factory: ReceiverFactory,  # noqa: F811
) -> None:
    hook = await receiver_factory()
    vigil = config(hook.url)
    now = rig.clock.now()
    until = now + HOUR
    await rig.book.add(Span("s-1", {"host": "web-1"}, now - HOUR, until, "deploy"))
    await rig.start(vigil)
    await rig.start_service(build_notifier(rig.settings, vigil, clock=rig.clock.now))
    await rig.samples(95, host="web-1")
    await rig.samples(95, host="web-2")

    # the list shows why web-1's alert pages nobody, and filters on it
    silenced = await alert_of(client, "web-1", silenced="true")
    (ref,) = silenced["suppressed_by"]
    assert (ref["kind"], ref["id"], ref["detail"]) == ("silence", "s-1", "deploy")
    assert datetime.fromisoformat(ref["until"].replace("Z", "+00:00")) == until
    assert silenced["flapping"] is False
    loud = await alert_of(client, "web-2", suppressed="false")
    assert loud["suppressed_by"] == []
    quiet = (await client.get("/api/monitoring/alerts", params={"suppressed": "true"})).json()
    assert [a["labels"]["host"] for a in quiet["items"]] == ["web-1"]

    # explain: web-1 not paged, and why; the rule and the sample that fired it
    answer = await explained(client, silenced["id"], "not paged")
    assert answer["verdict"] == (
        f"not paged: silenced by s-1 (deploy) until {until.strftime('%Y-%m-%d %H:%M:%S')} UTC"
    )
    assert answer["paged"] is False
    fired = answer["fired_by"]
    assert (fired["rule"], fired["metric"], fired["value"], fired["threshold"]) == (
        "HighCPU",
        "cpu",
        95,
        90,
    )
    assert fired["source_seq"] >= 1 and fired["reason"] == "threshold"
    assert [s["what"] for s in answer["steps"]] == ["fired", "suppressed"]
    # web-2 paged through the webhook, by the escalation's first step
    other = await explained(client, loud["id"], "paged", "escalation", "paged", "delivered")
    assert other["verdict"].startswith(("paged channel hook at ", "paged via hook at "))
    assert other["channels"] == ["hook"] and other["escalation_policies"] == ["ops"]

    # the silence is expired: web-1 pages now, and says so
    await rig.book.remove("s-1")
    answer = await explained(client, silenced["id"], "paged", "escalation", "paged", "delivered")
    assert answer["paged"] is True
    whats = [s["what"] for s in answer["steps"]]
    assert whats[:3] == ["fired", "suppressed", "unsuppressed"]
    assert "escalation" in whats and "paged" in whats and "delivered" in whats
    unsuppressed = answer["steps"][2]["detail"]
    assert unsuppressed.startswith("no longer silenced by s-1 (deploy)")
    assert unsuppressed.endswith("; pages now")
    assert (await alert_of(client, "web-1"))["suppressed_by"] == []


async def test_explain_by_rule_and_labels(
    rig: Rig,
    gateway: Gateway,
    client: httpx.AsyncClient,
    receiver_factory: ReceiverFactory,  # noqa: F811
) -> None:
    hook = await receiver_factory()
    now = rig.clock.now()
    await rig.book.add(Span("s-9", {"host": "db-1"}, now - HOUR, now + HOUR, "backup"))
    await rig.start(config(hook.url))
    ask = "/api/monitoring/explain"
    # a silenced series: the rule watches it, the silence would keep it quiet
    answer = await client.get(ask, params={"rule": "HighCPU", "labels": "host=db-1"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["rule"]["matches"] is True
    assert [r["id"] for r in body["suppressed_by"]] == ["s-9"]
    assert body["verdict"].startswith("would not page now: silenced by s-9 (backup)")
    assert body["alert"] is None
    # a series the rule does not watch
    body = (await client.get(ask, params={"rule": "ProdLatency", "labels": "env=dev"})).json()
    assert body["rule"]["matches"] is False
    assert body["verdict"] == "would not fire: ProdLatency watches only latency with env=prod"
    # a series that would page, and then its alert is explained too
    body = (await client.get(ask, params={"rule": "HighCPU", "labels": "host=web-7"})).json()
    assert body["verdict"] == "would page now as routed"
    await rig.samples(80, host="web-7")

    async def with_alert() -> dict[str, Any] | None:
        found = await client.get(ask, params={"rule": "HighCPU", "labels": '{"host": "web-7"}'})
        payload: dict[str, Any] = found.json()
        return payload if payload["alert"] else None

    body = await eventually(with_alert, what="the series' alert")
    assert body["alert"]["fired_by"]["value"] == 80
    # bad questions name what is wrong
    unknown = await client.get(ask, params={"rule": "Nope", "labels": "host=a"})
    assert unknown.status_code == 404
    assert "rule" in unknown.text
    bad = await client.get(ask, params={"rule": "HighCPU", "labels": "host"})
    assert bad.status_code in (400, 422)
    assert "labels" in bad.text
    missing = await client.get("/api/monitoring/alerts/nope/explain")
    assert missing.status_code == 404


async def test_a_silence_made_through_the_api_is_the_answer_to_why_not(
    rig: Rig,
    gateway: Gateway,
    client: httpx.AsyncClient,
    receiver_factory: ReceiverFactory,  # noqa: F811
) -> None:
    hook = await receiver_factory()
    vigil = config(hook.url)
    await rig.start(vigil, *())
    await rig.start_service(build_notifier(rig.settings, vigil, clock=rig.clock.now))
    ends = rig.clock.now() + HOUR
    made = await client.post(
        "/api/monitoring/silences",
        json={
            "matchers": [{"name": "host", "value": "db-2", "isRegex": False, "isEqual": True}],
            "endsAt": ends.isoformat(),
            "createdBy": "ann",
            "comment": "restore test",
        },
    )
    assert made.status_code == 200, made.text
    silence_id = made.json()["silenceID"]
    await rig.samples(95, host="db-2")
    alert = await alert_of(client, "db-2", silenced="true")
    answer = await explained(client, alert["id"], "not paged")
    assert answer["verdict"].startswith(f"not paged: silenced by {silence_id} (restore test")
    assert answer["verdict"].endswith(f"until {ends.strftime('%Y-%m-%d %H:%M:%S')} UTC")
    # expired through the API: it pages now
    assert (await client.delete(f"/api/monitoring/silences/{silence_id}")).status_code in (
        200,
        202,
    )
    answer = await explained(client, alert["id"], "paged", "unsuppressed", "delivered")
    assert any(e["event"] == "AlertSuppressionChanged" for e in (r.json() for r in hook.requests))
