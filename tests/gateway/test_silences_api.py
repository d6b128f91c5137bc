"""Silences over HTTP against a real gateway, the real alerts service and a real
nats-server: Alertmanager's v2 bodies at both paths (as amtool sends them), bad input
named by field, roles, idempotent retries, and the read model rebuilt from the log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.alerts.app import build as build_alerts
from services.gateway.app import Gateway, projection_store, rebuild
from services.gateway.silences.tables import silences
from shared.config import VigilConfig
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN, headers_for

SILENCES = "/api/monitoring/silences"
AM = "/api/v2"
GETTABLE_KEYS = {
    "id",
    "status",
    "updatedAt",
    "matchers",
    "startsAt",
    "endsAt",
    "createdBy",
    "comment",
}


def stamp(at: datetime) -> str:
    """As amtool writes a time (Go's strfmt.DateTime: RFC 3339, milliseconds, Z)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def amtool_body(matchers: list[dict[str, Any]], hours: float = 2, **changes: Any) -> dict[str, Any]:
    """What ``amtool silence add alertname=HighCPU host=web-1 -c deploy`` POSTs."""
    now = datetime.now(UTC)
    return {
        "matchers": matchers,
        "startsAt": stamp(now),
        "endsAt": stamp(now + timedelta(hours=hours)),
        "createdBy": "ann",
        "comment": "deploy",
        **changes,
    }


def matcher(name: str, value: str, regex: bool = False, equal: bool = True) -> dict[str, Any]:
    return {"isEqual": equal, "isRegex": regex, "name": name, "value": value}


HIGH_CPU = [matcher("alertname", "HighCPU"), matcher("host", "web-1")]


@pytest.fixture
async def http(
    gateway: Gateway, gateway_settings: Settings, start_service: RuntimeFactory
) -> AsyncIterator[httpx.AsyncClient]:
    await start_service(build_alerts(gateway_settings, VigilConfig(rules=[])))
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers=ADMIN
    ) as client:
        yield client


async def test_the_amtool_round_trip_at_alertmanagers_paths(http: httpx.AsyncClient) -> None:
    posted = await http.post(f"{AM}/silences", json=amtool_body(HIGH_CPU))
    assert posted.status_code == 200, posted.text
    silence_id = posted.json()["silenceID"]
    assert set(posted.json()) == {"silenceID"}

    listed = await http.get(f"{AM}/silences")
    assert listed.status_code == 200
    [silence] = listed.json()
    assert set(silence) == GETTABLE_KEYS
    assert (silence["id"], silence["status"], silence["createdBy"], silence["comment"]) == (
        silence_id,
        {"state": "active"},
        "ann",
        "deploy",
    )
    assert silence["matchers"] == HIGH_CPU
    assert silence["endsAt"].endswith("Z") and silence["updatedAt"].endswith("Z")

    # amtool silence query alertname=HighCPU: the filter names the silence's matchers
    found = await http.get(f"{AM}/silences", params={"filter": 'alertname="HighCPU"'})
    assert [s["id"] for s in found.json()] == [silence_id]
    both = [("filter", "alertname=HighCPU"), ("filter", "host=~web-.*")]
    assert [s["id"] for s in (await http.get(f"{AM}/silences", params=both)).json()] == [silence_id]
    for other in ('alertname="Other"', "team=db"):
        assert (await http.get(f"{AM}/silences", params={"filter": other})).json() == []

    one = await http.get(f"{AM}/silence/{silence_id}")
    assert one.status_code == 200 and one.json() == silence

    expired = await http.delete(f"{AM}/silence/{silence_id}")
    assert (expired.status_code, expired.content) == (200, b"")
    after = (await http.get(f"{AM}/silence/{silence_id}")).json()
    assert after["status"] == {"state": "expired"}
    again = await http.delete(f"{AM}/silence/{silence_id}")
    assert again.status_code == 409 and "already expired" in again.json()["detail"]
    assert (await http.delete(f"{AM}/silence/no-such-id")).status_code == 404
    assert (await http.get(f"{AM}/silence/no-such-id")).status_code == 404


async def test_updates_follow_alertmanager_and_retries_make_no_second_silence(
    http: httpx.AsyncClient,
) -> None:
    body = amtool_body(HIGH_CPU)
    keyed = {"Idempotency-Key": "deploy-42"}
    first = await http.post(SILENCES, json=body, headers=keyed)
    assert first.status_code == 200, first.text
    silence_id = first.json()["silenceID"]
    assert first.headers["location"] == f"{SILENCES}/{silence_id}"
    retried = await http.post(SILENCES, json={**body, "comment": "retried"}, headers=keyed)
    assert retried.json() == first.json()
    assert len((await http.get(SILENCES)).json()) == 1

    # a longer end with the same matchers (amtool silence update: what GET shows, changed):
    # the same silence, changed
    current = (await http.get(f"{SILENCES}/{silence_id}")).json()
    later = stamp(datetime.now(UTC) + timedelta(hours=5))
    longer = {**body, "id": silence_id, "startsAt": current["startsAt"], "endsAt": later}
    longer["comment"] = "longer"
    changed = await http.post(SILENCES, json=longer)
    assert changed.json() == {"silenceID": silence_id}
    shown = (await http.get(f"{SILENCES}/{silence_id}")).json()
    assert (shown["comment"], shown["endsAt"][:19]) == ("longer", later[:19])

    # other matchers: a new silence, and the old one expired
    narrower = {**longer, "matchers": [*HIGH_CPU, matcher("env", "prod")]}
    replaced = (await http.post(SILENCES, json=narrower)).json()["silenceID"]
    assert replaced != silence_id
    states = {s["id"]: s["status"]["state"] for s in (await http.get(SILENCES)).json()}
    assert states == {replaced: "active", silence_id: "expired"}

    pending = amtool_body(
        [matcher("job", "batch")], startsAt=stamp(datetime.now(UTC) + timedelta(hours=1))
    )
    waiting = (await http.post(SILENCES, json=pending)).json()["silenceID"]
    listed = (await http.get(SILENCES)).json()
    assert [(s["id"], s["status"]["state"]) for s in listed] == [
        (replaced, "active"),
        (waiting, "pending"),
        (silence_id, "expired"),
    ]

    ended = await http.delete(f"{SILENCES}/{waiting}")
    assert ended.status_code == 200
    assert ended.json()["status"] == {"state": "expired"}
    assert ended.json()["startsAt"] == ended.json()["endsAt"]  # it never starts


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (amtool_body([matcher("host", "web-(", regex=True)]), "matchers[0].value", "regular"),
        (amtool_body([matcher("host", "a"), matcher("9x", "b")]), "matchers[1].name", "must match"),
        (amtool_body([matcher("host", ".*", regex=True)]), "matchers", "every alert"),
        (amtool_body([]), "matchers", "at least 1"),
        (amtool_body(HIGH_CPU, hours=-1), "endsAt", "after startsAt"),
        (
            amtool_body(HIGH_CPU, startsAt="2020-01-01T00:00:00Z", endsAt="2020-01-02T00:00:00Z"),
            "endsAt",
            "not in the future",
        ),
        (amtool_body(HIGH_CPU, endsAt="tomorrow"), "endsAt", "datetime"),
        (amtool_body(HIGH_CPU, createdBy=""), "createdBy", "at least 1"),
        (amtool_body(HIGH_CPU, status={"state": "active"}), "status", "Extra inputs"),
        (amtool_body(HIGH_CPU, id="no-such-silence"), "id", "no silence"),
        ({k: v for k, v in amtool_body(HIGH_CPU).items() if k != "endsAt"}, "endsAt", "required"),
    ],
)
async def test_bad_silences_are_refused_naming_the_field(
    http: httpx.AsyncClient, body: dict[str, Any], field: str, says: str
) -> None:
    for path in (SILENCES, f"{AM}/silences"):
        refused = await http.post(path, json=body)
        assert refused.status_code in (404, 422), (path, refused.text)
        problem = refused.json()
        assert refused.headers["content-type"] == "application/problem+json"
        assert problem["field"] == field, problem
        assert problem["detail"].startswith(f"{field}: ") and says in problem["detail"], problem
    assert (await http.get(SILENCES)).json() == []


async def test_a_body_that_is_not_a_silence_is_refused(http: httpx.AsyncClient) -> None:
    headers = {"Content-Type": "application/json"}
    for raw, says in ((b"{nope", "not valid JSON"), (b"[]", "must be a JSON object")):
        refused = await http.post(SILENCES, content=raw, headers=headers)
        assert (refused.status_code, refused.json()["field"]) == (422, "body")
        assert says in refused.json()["detail"]
    bad_filter = await http.get(SILENCES, params=[("filter", "host=a"), ("filter", "nope")])
    assert (bad_filter.status_code, bad_filter.json()["field"]) == (422, "filter[1]")
    missing = await http.get(f"{SILENCES}/no-such-id")
    assert (missing.status_code, missing.json()["field"]) == (404, "silence_id")


async def test_viewers_read_and_responders_silence(
    http: httpx.AsyncClient, gateway: Gateway
) -> None:
    viewer = await headers_for(gateway.app, http, "viewer")
    responder = await headers_for(gateway.app, http, "responder")
    anonymous = {"Authorization": ""}
    body = amtool_body(HIGH_CPU)
    for path in (SILENCES, f"{AM}/silences"):
        assert (await http.get(path, headers=anonymous)).status_code == 401
        assert (await http.get(path, headers=viewer)).status_code == 200
        assert (await http.post(path, json=body, headers=viewer)).status_code == 403
    made = await http.post(f"{AM}/silences", json=body, headers=responder)
    assert made.status_code == 200
    silence_id = made.json()["silenceID"]
    assert (await http.delete(f"{AM}/silence/{silence_id}", headers=viewer)).status_code == 403
    assert (await http.delete(f"{SILENCES}/{silence_id}", headers=viewer)).status_code == 403
    assert (await http.delete(f"{SILENCES}/{silence_id}", headers=responder)).status_code == 200
    [row] = (await http.get(SILENCES, headers=viewer)).json()
    assert row["status"]["state"] == "expired"


async def read_model(settings: Settings) -> list[tuple[Any, ...]]:
    store = projection_store(settings)
    try:
        async with store.engine.connect() as conn:
            rows = await conn.execute(select(silences).order_by(silences.c.id))
            return [tuple(row) for row in rows]
    finally:
        await store.dispose()


async def test_the_read_model_rebuilt_from_the_log_equals_the_live_one(
    http: httpx.AsyncClient, gateway: Gateway, gateway_settings: Settings
) -> None:
    first = (await http.post(SILENCES, json=amtool_body(HIGH_CPU))).json()["silenceID"]
    second = (await http.post(SILENCES, json=amtool_body([matcher("job", "api")]))).json()
    starts = (await http.get(f"{SILENCES}/{first}")).json()["startsAt"]
    longer = {**amtool_body(HIGH_CPU, hours=6), "id": first, "startsAt": starts}
    longer["comment"] = "longer"
    assert (await http.post(SILENCES, json=longer)).status_code == 200
    moved = {**longer, "matchers": [matcher("host", "web-2")]}
    assert (await http.post(SILENCES, json=moved)).status_code == 200
    assert (await http.delete(f"{SILENCES}/{second['silenceID']}")).status_code == 200
    live = await read_model(gateway_settings)
    assert len(live) == 3
    await gateway.runtime.stop()

    await rebuild(gateway_settings)

    assert await read_model(gateway_settings) == live
