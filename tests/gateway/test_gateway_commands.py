"""Commands through the gateway: sent to the owner, answered with the updated read model
(read-your-writes), and every owner error mapped to one HTTP status."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from services.gateway.app import Gateway
from services.gateway.common.errors import ACTOR_REFUSAL
from shared import commands, subjects
from shared.bus import EventBus
from shared.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from shared.events import (
    AlertFired,
    MessageDeadLettered,
    NotificationDelivered,
    NotificationFailed,
)
from tests.gateway.conftest import detail
from tests.gateway.gateway_standins import StandIns
from tests.gateway.identities import ADMIN_ACTOR
from tests.waiting import eventually

API = "/api/monitoring"


@pytest.fixture
async def owners(bus: EventBus) -> AsyncIterator[StandIns]:
    stand_ins = await StandIns(bus).serve_all()
    yield stand_ins
    for subscription in stand_ins.subscriptions:
        await subscription.unsubscribe()


async def fire(bus: EventBus, alert_id: str, severity: str = "critical") -> int:
    event = AlertFired(
        aggregate_id=alert_id,
        rule="HighCPU",
        fingerprint=f"fp-{alert_id}",
        metric="system_cpu_percent",
        labels={"host": "web-1"},
        severity=severity,  # type: ignore[arg-type]
        value=97.0,
        threshold=90.0,
    )
    return await bus.publish(subjects.alert(alert_id), event, expected_last_subject_seq=0)


async def projected(gateway: Gateway, projection: str, seq: int) -> None:
    await eventually(lambda: gateway.state.progress.applied.get(projection, 0) >= seq)


async def test_acknowledge_answers_with_the_acknowledged_alert(
    client: httpx.AsyncClient, gateway: Gateway, bus: EventBus, owners: StandIns
) -> None:
    await projected(gateway, "gateway-alerts", await fire(bus, "a-1"))

    response = await client.post(f"{API}/alerts/a-1/ack", json={"comment": "on it"})

    assert response.status_code == 200
    alert = response.json()
    assert (alert["status"], alert["acknowledged_by"], alert["version"]) == (
        "acknowledged",
        ADMIN_ACTOR,
        2,
    )
    assert [(t["type"], t["by"], t["detail"]) for t in alert["timeline"]] == [
        ("AlertFired", "", "system_cpu_percent = 97 ≥ 90"),
        ("AlertAcknowledged", ADMIN_ACTOR, "on it"),
    ]
    resolved = await client.post(f"{API}/alerts/a-1/resolve")
    assert resolved.status_code == 200
    assert (resolved.json()["status"], resolved.json()["resolved_by"]) == ("resolved", ADMIN_ACTOR)


async def test_alert_lists_filter_by_status_and_severity(
    client: httpx.AsyncClient, gateway: Gateway, bus: EventBus, owners: StandIns
) -> None:
    await fire(bus, "a-1")
    await fire(bus, "a-2", severity="warning")
    await projected(gateway, "gateway-alerts", await fire(bus, "a-3"))
    await client.post(f"{API}/alerts/a-3/ack")

    def ids(response: httpx.Response) -> set[str]:
        assert response.status_code == 200
        return {alert["id"] for alert in response.json()["items"]}

    assert ids(await client.get(f"{API}/alerts")) == {"a-1", "a-2", "a-3"}
    assert ids(await client.get(f"{API}/alerts?status=firing")) == {"a-1", "a-2"}
    assert ids(await client.get(f"{API}/alerts?status=firing&severity=critical")) == {"a-1"}
    assert len((await client.get(f"{API}/alerts?limit=1")).json()["items"]) == 1
    bad = await client.get(f"{API}/alerts?status=sleeping")
    assert bad.status_code == 422
    assert detail(bad).startswith("status: Input should be 'firing'")


async def test_an_incident_is_worked_from_open_to_resolved(
    client: httpx.AsyncClient, owners: StandIns
) -> None:
    opened = await client.post(
        f"{API}/incidents", json={"title": "checkout down", "severity": "critical"}
    )
    assert opened.status_code == 201
    incident = opened.json()
    incident_id = incident["id"]
    assert opened.headers["location"] == f"{API}/incidents/{incident_id}"
    assert (incident["status"], incident["opened_by"]) == ("investigating", ADMIN_ACTOR)

    url = f"{API}/incidents/{incident_id}"
    noted = await client.post(f"{url}/notes", json={"text": "rolled back"})
    assert noted.status_code == 201
    assert [(n["author"], n["text"]) for n in noted.json()["notes"]] == [
        (ADMIN_ACTOR, "rolled back")
    ]
    assigned = await client.put(f"{url}/assignee", json={"assignee": "bob"})
    assert assigned.json()["assignee"] == "bob"
    lowered = await client.put(f"{url}/severity", json={"severity": "warning"})
    assert lowered.json()["severity"] == "warning"
    identified = await client.put(f"{url}/status", json={"status": "identified"})
    assert identified.json()["status"] == "identified"
    resolved = await client.put(f"{url}/status", json={"status": "resolved", "message": "ok"})
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_at"] is not None

    again = await client.put(f"{url}/status", json={"status": "monitoring"})
    assert again.status_code == 409
    assert detail(again) == "status: the incident is resolved"

    fetched = (await client.get(url)).json()
    assert [t["type"] for t in fetched["timeline"]] == [
        "IncidentOpened",
        "IncidentNoteAdded",
        "IncidentAssigned",
        "IncidentSeverityChanged",
        "IncidentStatusChanged",
        "IncidentStatusChanged",
    ]
    listed = await client.get(f"{API}/incidents?status=resolved")
    assert [i["id"] for i in listed.json()["items"]] == [incident_id]
    assert (await client.get(f"{API}/incidents?status=investigating")).json()["items"] == []


async def test_a_synthetic_check_is_created_run_and_removed(
    client: httpx.AsyncClient, owners: StandIns
) -> None:
    created = await client.post(
        f"{API}/synthetic/checks",
        json={"name": "homepage", "url": "http://shop.test/", "interval": "60s"},
    )
    assert created.status_code == 201
    check = created.json()
    assert (check["id"], check["interval"], check["timeout"], check["last_ok"]) == (
        "homepage",
        "1m",
        "10s",
        None,
    )
    assert created.headers["location"] == f"{API}/synthetic/checks/homepage"
    assert (await client.get(created.headers["location"])).json() == check

    ran = await client.post(f"{API}/synthetic/checks/homepage/run")
    assert ran.status_code == 200
    assert (ran.json()["last_ok"], ran.json()["last_status_code"]) == (True, 200)
    results = (await client.get(f"{API}/synthetic/results?check_id=homepage")).json()["items"]
    assert [(r["check_id"], r["trigger"], r["latency_ms"]) for r in results] == [
        ("homepage", "manual", 4.2)
    ]

    removed = await client.delete(f"{API}/synthetic/checks/homepage")
    assert removed.status_code == 204
    assert (await client.get(f"{API}/synthetic/checks")).json()["items"] == []
    gone = await client.post(f"{API}/synthetic/checks/homepage/run")
    assert gone.status_code == 404
    assert detail(gone) == "check_id: no check 'homepage'"


async def test_owner_errors_map_to_http_statuses(client: httpx.AsyncClient, bus: EventBus) -> None:
    raised = {
        "missing": NotFound("alert_id: no alert 'missing'", field="alert_id"),
        "busy": Conflict("alerts.events.busy changed concurrently; reload and retry"),
        "done": InvalidTransition("alert done is already resolved"),
        "odd": InvalidInput("comment: too odd", field="comment"),
    }

    async def acknowledge(body: dict[str, Any]) -> Any:
        alert_id = body["alert_id"]
        if alert_id in raised:
            raise raised[alert_id]
        raise RuntimeError("disk on fire")

    await bus.serve(commands.ACKNOWLEDGE_ALERT, acknowledge)
    expected = {"missing": 404, "busy": 409, "done": 409, "odd": 422, "broken": 502}
    for alert_id, status in expected.items():
        response = await client.post(f"{API}/alerts/{alert_id}/ack")
        assert (alert_id, response.status_code) == (alert_id, status)
        if alert_id in raised:
            assert detail(response) == raised[alert_id].message
    assert detail(await client.post(f"{API}/alerts/broken/ack")).startswith("internal error")

    # nobody answers resolve
    unanswered = await client.post(f"{API}/alerts/x/resolve")
    assert unanswered.status_code == 503
    assert detail(unanswered) == "no service answered vigil.cmd.alerts.resolve"


async def test_bad_bodies_are_refused_before_reaching_the_owner(client: httpx.AsyncClient) -> None:
    # no responders run in this test: a 422 proves the gateway refused the body itself
    cases = [
        ("post", f"{API}/alerts/a-1/ack", {"by": "ceo"}, f"by: {ACTOR_REFUSAL}"),
        ("post", f"{API}/incidents/i-1/notes", {"text": "x", "author": "ceo"}, "author: the actor"),
        ("post", f"{API}/alerts/a-1/ack", {"who": "ann"}, "who: Extra inputs are not permitted"),
        ("post", f"{API}/incidents", {"severity": "critical"}, "title: Field required"),
        ("post", f"{API}/incidents", {"title": "x", "severity": "huge"}, "severity: Input should"),
        ("put", f"{API}/incidents/i-1/status", {"status": "sleeping"}, "status: Input should"),
        ("post", f"{API}/incidents/i-1/notes", {"text": ""}, "text: String should have at least"),
        ("put", f"{API}/incidents/i-1/assignee", {}, "assignee: Field required"),
        ("post", f"{API}/synthetic/checks", {"name": "x", "url": "ftp://x"}, "url: String should"),
        ("post", f"{API}/synthetic/checks", {"name": "x"}, "url: Field required"),
    ]
    for method, url, body, message in cases:
        response = await client.request(method.upper(), url, json=body)
        assert (url, body, response.status_code) == (url, body, 422)
        assert detail(response).startswith(message), detail(response)


async def test_unknown_ids_are_not_found(client: httpx.AsyncClient) -> None:
    alert = await client.get(f"{API}/alerts/nope")
    incident = await client.get(f"{API}/incidents/nope")
    assert (alert.status_code, detail(alert)) == (404, "alert_id: no alert 'nope'")
    assert (incident.status_code, detail(incident)) == (404, "incident_id: no incident 'nope'")


async def test_ledgers_list_notifications_and_dead_letters(
    client: httpx.AsyncClient, gateway: Gateway, bus: EventBus
) -> None:
    delivered = NotificationDelivered(
        aggregate_id="d-1",
        event_id="e-1",
        event_type="AlertFired",
        channel="ops",
        attempts=1,
        status_code=204,
        latency_ms=6.5,
    )
    failed = NotificationFailed(
        aggregate_id="d-2",
        event_id="e-1",
        event_type="AlertFired",
        channel="pager",
        attempts=3,
        error="HTTP 410",
        permanent=True,
    )
    letter = MessageDeadLettered(
        aggregate_id="notifier-alerts",
        consumer="notifier-alerts",
        stream="ALERTS",
        stream_seq=9,
        subject="alerts.events.a-9",
        deliveries=8,
        error="ValueError: no",
        payload='{"type": "AlertFired"}',
    )
    await bus.publish(subjects.notification("d-1"), delivered)
    await projected(
        gateway, "gateway-notifications", await bus.publish(subjects.notification("d-2"), failed)
    )
    await projected(
        gateway,
        "gateway-deadletters",
        await bus.publish(subjects.dead_letter("notifier-alerts"), letter),
    )

    ledger = (await client.get(f"{API}/notifications")).json()["items"]
    assert [(n["id"], n["status"], n["status_code"], n["permanent"]) for n in ledger] == [
        ("d-2", "failed", None, True),
        ("d-1", "delivered", 204, False),
    ]
    only_ops = (await client.get(f"{API}/notifications?channel=ops")).json()["items"]
    assert [n["id"] for n in only_ops] == ["d-1"]
    letters = (await client.get(f"{API}/deadletters")).json()["items"]
    assert [(d["consumer"], d["stream_seq"], d["error"]) for d in letters] == [
        ("notifier-alerts", 9, "ValueError: no")
    ]


# --- answers while the read model lags ------------------------------------------------

LAG_WAIT_S = 0.3  # how long a command waits for the read model in these tests


@contextlib.asynccontextmanager
async def paused(bus: EventBus, stream: str, durable: str) -> AsyncIterator[None]:
    """The gateway's consumer of ``stream`` delivers nothing meanwhile (a JetStream
    consumer pause): its read model lags behind the commands."""
    api = f"$JS.API.CONSUMER.PAUSE.{stream}.{durable}"

    async def pause() -> bool:  # the gateway may still be creating its consumer
        reply = await bus.nc.request(api, orjson.dumps({"pause_until": "2100-01-01T00:00:00Z"}))
        return bool(orjson.loads(reply.data)["paused"])

    await eventually(pause, what=f"{durable} paused")
    try:
        yield
    finally:
        await bus.nc.request(api, b"")


async def body_at(client: httpx.AsyncClient, location: str) -> Any:
    response = await client.get(location)
    return response.json() if response.status_code == 200 else None


async def test_alert_commands_answer_202_and_where_to_look_until_the_read_model_shows_them(
    client: httpx.AsyncClient, gateway: Gateway, bus: EventBus, owners: StandIns
) -> None:
    gateway.state.consistency_wait_s = LAG_WAIT_S
    fired = await fire(bus, "a-1")
    await projected(gateway, "gateway-alerts", fired)

    async with paused(bus, "ALERTS", "gateway-alerts"):
        acked = await client.post(f"{API}/alerts/a-1/ack")
        assert acked.status_code == 202
        location = acked.headers["location"]
        assert location == f"{API}/alerts/a-1"
        result = acked.json()
        assert (result["aggregate_id"], result["stream"], result["version"]) == ("a-1", "ALERTS", 2)
        assert result["seq"] > fired
        # the resource still shows the older state, as itself and not as the command's result
        assert ((await body_at(client, location))["status"]) == "firing"

        resolved = await client.post(f"{API}/alerts/a-1/resolve")
        assert (resolved.status_code, resolved.headers["location"]) == (202, location)
        assert resolved.json()["version"] == 3

    async def shows_resolved() -> bool:
        alert = await body_at(client, location)
        return bool(alert["status"] == "resolved" and alert["version"] == 3)

    await eventually(shows_resolved, what="the alert shown resolved")


async def test_incident_commands_answer_202_and_where_to_look_until_the_read_model_shows_them(
    client: httpx.AsyncClient, gateway: Gateway, bus: EventBus, owners: StandIns
) -> None:
    gateway.state.consistency_wait_s = LAG_WAIT_S
    async with paused(bus, "INCIDENTS", "gateway-incidents"):
        opened = await client.post(
            f"{API}/incidents", json={"title": "checkout down", "severity": "critical"}
        )
        assert opened.status_code == 202
        incident_id = opened.json()["aggregate_id"]
        location = opened.headers["location"]
        assert location == f"{API}/incidents/{incident_id}"
        assert (await client.get(location)).status_code == 404  # not there yet

        changed = await client.put(f"{location}/status", json={"status": "identified"})
        noted = await client.post(f"{location}/notes", json={"text": "rolled back"})
        assigned = await client.put(f"{location}/assignee", json={"assignee": "bob"})
        for answer in (changed, noted, assigned):
            assert (answer.status_code, answer.headers["location"]) == (202, location)
        assert assigned.json()["version"] == 4

    async def shows_all() -> bool:
        incident = await body_at(client, location)
        return incident is not None and incident["version"] == 4

    await eventually(shows_all, what="the incident shown with all four changes")
    incident = await body_at(client, location)
    assert (incident["status"], incident["assignee"], len(incident["notes"])) == (
        "identified",
        "bob",
        1,
    )


async def test_check_commands_answer_202_and_where_to_look_until_the_read_model_shows_them(
    client: httpx.AsyncClient, gateway: Gateway, bus: EventBus, owners: StandIns
) -> None:
    gateway.state.consistency_wait_s = LAG_WAIT_S
    check = {"name": "homepage", "url": "http://shop.test/", "interval": 60}
    async with paused(bus, "SYNTHETIC", "gateway-synthetic"):
        created = await client.post(f"{API}/synthetic/checks", json=check)
        assert created.status_code == 202
        location = created.headers["location"]
        assert location == f"{API}/synthetic/checks/homepage"
        assert (await client.get(location)).status_code == 404
    await eventually(lambda: body_at(client, location), what="the check shown")

    async with paused(bus, "SYNTHETIC", "gateway-synthetic"):
        removed = await client.delete(location)
        assert (removed.status_code, removed.headers["location"]) == (202, location)
        assert (await client.get(location)).status_code == 200  # still listed meanwhile

    async def gone() -> bool:
        return (await client.get(location)).status_code == 404

    await eventually(gone, what="the check shown removed")


async def test_the_202_answers_are_documented(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    commands_documented = [
        ("post", f"{API}/alerts/{{alert_id}}/ack"),
        ("post", f"{API}/alerts/{{alert_id}}/resolve"),
        ("post", f"{API}/incidents"),
        ("put", f"{API}/incidents/{{incident_id}}/status"),
        ("post", f"{API}/incidents/{{incident_id}}/notes"),
        ("put", f"{API}/incidents/{{incident_id}}/assignee"),
        ("put", f"{API}/incidents/{{incident_id}}/severity"),
        ("post", f"{API}/synthetic/checks"),
        ("post", f"{API}/synthetic/checks/{{check_id}}/run"),
        ("delete", f"{API}/synthetic/checks/{{check_id}}"),
    ]
    for method, path in commands_documented:
        accepted = paths[path][method]["responses"]["202"]
        assert "Location" in accepted["headers"], path
        schema = accepted["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/CommandResult"}, path
