"""Maintenance windows over HTTP against a real gateway, the real alerts service and a real
nats-server: visible ahead of time with their occurrences, changed by admins, the file's
read-only, bad input named by field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.alerts.app import build as build_alerts
from services.gateway.app import Gateway
from shared.config import VigilConfig
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN, ADMIN_ACTOR, headers_for
from tests.waiting import eventually

MAINTENANCE = "/api/monitoring/maintenance"
SUNDAYS = {
    "name": "sunday-patching",
    "matchers": ["host=~web-.*"],
    "comment": "OS patches",
    "cron": "0 2 * * 0",
    "duration": "2h",
    "timezone": "Europe/Berlin",
}
ONE_OFF = {
    "name": "db-move",
    "matchers": ['team="db"'],
    "comment": "moving the database",
    "start": "2026-05-01T22:00:00+02:00",
    "end": "2026-05-02T01:30:00+02:00",
}


@pytest.fixture
async def http(
    gateway: Gateway, gateway_settings: Settings, start_service: RuntimeFactory, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    owned = gateway_settings.model_copy(update={"config": tmp_path / "vigil.yaml"})
    config = VigilConfig.model_validate({"rules": [], "maintenance": [SUNDAYS]})
    await start_service(build_alerts(owned, config))
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers=ADMIN
    ) as client:
        yield client


async def calendar(http: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    answer = await http.get(MAINTENANCE, params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_windows_are_shown_with_their_occurrences_ahead_of_time(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    made = await http.post(MAINTENANCE, json=ONE_OFF)
    assert made.status_code == 201, made.text
    assert made.headers["location"] == f"{MAINTENANCE}/db-move"
    assert (made.json()["source"], made.json()["updated_by"]) == ("api", ADMIN_ACTOR)

    shown = await calendar(http, **{"from": "2026-03-27T00:00:00Z", "to": "2026-05-04T00:00:00Z"})
    assert (shown["from"], shown["to"]) == ("2026-03-27T00:00:00Z", "2026-05-04T00:00:00Z")
    by_name = {w["name"]: w for w in shown["windows"]}
    assert list(by_name) == ["db-move", "sunday-patching"]
    assert by_name["db-move"]["occurrences"] == [
        {"start": "2026-05-01T20:00:00Z", "end": "2026-05-01T23:30:00Z"}
    ]
    sundays = by_name["sunday-patching"]
    assert (sundays["source"], sundays["file"], sundays["duration"]) == (
        "file",
        str(tmp_path / "vigil.yaml"),
        "2h",
    )
    starts = [o["start"] for o in sundays["occurrences"]]
    # 02:00 in Berlin: 01:00 UTC in winter, the skipped hour's 03:00 on 29 March, then 00:00
    assert starts[:3] == ["2026-03-29T01:00:00Z", "2026-04-05T00:00:00Z", "2026-04-12T00:00:00Z"]
    assert len(starts) == 6 and not sundays["occurrences_truncated"]

    # by default: the next seven days from now
    default = await calendar(http)
    begin = datetime.fromisoformat(default["from"])
    assert abs(begin - datetime.now(UTC)) < timedelta(minutes=1)
    assert datetime.fromisoformat(default["to"]) - begin == timedelta(days=7)
    weekly = next(w for w in default["windows"] if w["name"] == "sunday-patching")
    assert len(weekly["occurrences"]) == 1


async def test_admins_change_windows_and_the_files_are_read_only(http: httpx.AsyncClient) -> None:
    assert (await http.post(MAINTENANCE, json=ONE_OFF)).status_code == 201
    later = {**ONE_OFF, "end": "2026-05-02T03:00:00+02:00"}
    changed = await http.put(f"{MAINTENANCE}/db-move", json=later)
    assert changed.status_code == 200 and changed.json()["version"] == 2
    assert changed.json()["end"] == "2026-05-02T03:00:00+02:00"
    read = await http.get(f"{MAINTENANCE}/db-move")
    assert read.json()["end"] == "2026-05-02T03:00:00+02:00"
    assert (await http.post(MAINTENANCE, json=ONE_OFF)).status_code == 409

    refused = await http.put(f"{MAINTENANCE}/sunday-patching", json=SUNDAYS)
    assert (refused.status_code, refused.json()["field"]) == (409, "name")
    assert "managed by the configuration file" in refused.json()["detail"]
    assert (await http.delete(f"{MAINTENANCE}/sunday-patching")).status_code == 409

    assert (await http.delete(f"{MAINTENANCE}/db-move")).status_code == 204
    assert (await http.get(f"{MAINTENANCE}/db-move")).status_code == 404
    names = [w["name"] for w in (await calendar(http))["windows"]]
    assert names == ["sunday-patching"]


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({**SUNDAYS, "name": "x", "cron": "every sunday"}, "cron", "five fields"),
        ({**SUNDAYS, "name": "x", "timezone": "Berlin"}, "timezone", "unknown time zone"),
        ({**SUNDAYS, "name": "x", "duration": "soon"}, "duration", "duration must be like"),
        ({**SUNDAYS, "name": "x", "matchers": ["host=~.*"]}, "matchers", "every alert"),
        ({**SUNDAYS, "name": "x", "matchers": ["host"]}, "matchers.0", "not a matcher"),
        ({**ONE_OFF, "end": "2026-05-01T21:00:00+02:00"}, "end", "after start"),
        ({**ONE_OFF, "start": "2026-05-01T22:00:00"}, "start", "UTC offset"),
        ({**ONE_OFF, "cron": "0 2 * * 0"}, "cron", "not both"),
        ({**ONE_OFF, "by": "ceo"}, "by", "authenticated identity"),
    ],
)
async def test_bad_windows_are_refused_naming_the_field(
    http: httpx.AsyncClient, body: dict[str, Any], field: str, says: str
) -> None:
    refused = await http.post(MAINTENANCE, json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == field
    assert refused.json()["detail"].startswith(f"{field}: ") and says in refused.json()["detail"]


@pytest.mark.parametrize(
    ("params", "field", "says"),
    [
        ({"from": "2026-05-01T00:00:00"}, "from", "UTC offset"),
        ({"from": "yesterday"}, "from", "datetime"),
        ({"from": "2026-05-02T00:00:00Z", "to": "2026-05-01T00:00:00Z"}, "to", "after from"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2027-06-01T00:00:00Z"}, "to", "at most 366"),
    ],
)
async def test_a_bad_range_is_refused_naming_the_parameter(
    http: httpx.AsyncClient, params: dict[str, str], field: str, says: str
) -> None:
    refused = await http.get(MAINTENANCE, params=params)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == field and says in refused.json()["detail"]


async def test_viewers_read_and_only_admins_change(
    http: httpx.AsyncClient, gateway: Gateway
) -> None:
    viewer = await headers_for(gateway.app, http, "viewer")
    responder = await headers_for(gateway.app, http, "responder")
    assert (await http.get(MAINTENANCE, headers={"Authorization": ""})).status_code == 401
    assert (await http.get(MAINTENANCE, headers=viewer)).status_code == 200

    async def shown() -> bool:
        answer = await http.get(f"{MAINTENANCE}/sunday-patching", headers=viewer)
        return answer.status_code == 200

    await eventually(shown, what="the file's window in the read model")
    for headers in (viewer, responder):
        assert (await http.post(MAINTENANCE, json=ONE_OFF, headers=headers)).status_code == 403
        assert (await http.delete(f"{MAINTENANCE}/x", headers=headers)).status_code == 403
