"""``GET /api/monitoring/oncall`` against a real gateway whose schedules come from the real
notifier's configuration; the expected answers are worked out by hand from the calendar."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from services.gateway.app import Gateway
from services.gateway.schedules.queries import get_contact, get_schedule
from services.notifier.app import build as build_notifier
from shared.config import parse_config
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import headers_for
from tests.waiting import eventually

ONCALL = "/api/monitoring/oncall"
# Berlin in January is UTC+1: the 09:00 handoff is 08:00Z, the 02:00-06:00 override is
# 01:00Z-05:00Z. ann holds 2026-01-05 08:00Z .. 2026-01-06 08:00Z, then bob.
FILE = parse_config(
    """
contacts:
  - name: ann
    methods: [{channel: mail, address: ann@example.com}]
  - name: cat
    methods:
      - {channel: pager, address: cat-key}
      - {channel: slack-bot, address: U0CAT}
schedules:
  - name: ops
    time_zone: Europe/Berlin
    layers:
      - {name: day, users: [ann, bob], rotation: daily, start: 2026-01-05, handoff: "09:00"}
    overrides:
      - {user: cat, start: "2026-01-06T02:00", end: "2026-01-06T06:00"}
"""
)


@pytest.fixture
async def http(
    gateway: Gateway, gateway_settings: Settings, start_service: RuntimeFactory
) -> AsyncIterator[httpx.AsyncClient]:
    await start_service(build_notifier(gateway_settings, FILE))
    engine = gateway.state.store.engine

    async def projected() -> bool:
        return (
            await get_schedule(engine, "ops") is not None
            and await get_contact(engine, "cat") is not None
        )

    await eventually(projected, what="the file's schedule in the gateway's read model")
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        client.headers.update(await headers_for(gateway.app, client, "viewer"))
        yield client


async def ask(http: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await http.get(ONCALL, params={"schedule": "ops", **params})


async def test_who_is_on_call_at_an_instant(http: httpx.AsyncClient) -> None:
    before = await ask(http, at="2026-01-06T00:30:00Z")
    assert before.status_code == 200, before.text
    assert before.json() == {
        "schedule": "ops",
        "at": "2026-01-06T00:30:00Z",
        "user": "ann",
        "layer": "day",
        "override": False,
        "shift_start": "2026-01-05T08:00:00Z",
        "shift_end": "2026-01-06T01:00:00Z",
        "contacts": [{"channel": "mail", "address": "ann@example.com"}],
        "shifts": None,
    }
    # without an offset the time is the schedule's: 03:00 Berlin is 02:00Z, in the override
    during = (await ask(http, at="2026-01-06T03:00")).json()
    assert (during["at"], during["user"], during["layer"], during["override"]) == (
        "2026-01-06T02:00:00Z",
        "cat",
        "override",
        True,
    )
    assert (during["shift_start"], during["shift_end"]) == (
        "2026-01-06T01:00:00Z",
        "2026-01-06T05:00:00Z",
    )
    assert [m["channel"] for m in during["contacts"]] == ["pager", "slack-bot"]
    # exactly at the handoff the next one is on call; bob has no contact methods
    handoff = (await ask(http, at="2026-01-06T09:00:00+01:00")).json()
    assert (handoff["user"], handoff["shift_start"], handoff["contacts"]) == (
        "bob",
        "2026-01-06T08:00:00Z",
        [],
    )
    nobody = (await ask(http, at="2026-01-05T07:59:59Z")).json()
    assert (nobody["user"], nobody["layer"], nobody["shift_end"]) == (None, None, None)


async def test_now_is_the_default(http: httpx.AsyncClient) -> None:
    asked = datetime.now(UTC)
    answer = (await ask(http)).json()
    at = datetime.fromisoformat(answer["at"].replace("Z", "+00:00"))
    assert 0 <= (at - asked).total_seconds() < 5
    assert answer["user"] in ("ann", "bob")  # the override was long ago


async def test_shifts_over_a_range(http: httpx.AsyncClient) -> None:
    answer = (
        await ask(
            http, at="2026-01-06T02:00:00Z", **{"from": "2026-01-05", "to": "2026-01-06T10:00"}
        )
    ).json()
    assert answer["user"] == "cat"
    assert [(s["user"], s["layer"], s["start"], s["end"]) for s in answer["shifts"]] == [
        ("ann", "day", "2026-01-05T08:00:00Z", "2026-01-06T01:00:00Z"),
        ("cat", "override", "2026-01-06T01:00:00Z", "2026-01-06T05:00:00Z"),
        ("ann", "day", "2026-01-06T05:00:00Z", "2026-01-06T08:00:00Z"),
        ("bob", "day", "2026-01-06T08:00:00Z", "2026-01-06T09:00:00Z"),
    ]


async def test_bad_questions_are_answered_with_the_parameter_named(
    http: httpx.AsyncClient,
) -> None:
    unknown = await http.get(ONCALL, params={"schedule": "nope"})
    assert (unknown.status_code, unknown.json()["field"]) == (404, "schedule")
    assert "nope" in unknown.json()["detail"]
    for params, field in (
        ({"at": "yesterday"}, "at"),
        ({"at": "2026-13-01T00:00"}, "at"),
        ({"from": "2026-01-05"}, "to"),
        ({"to": "2026-01-05"}, "from"),
        ({"from": "2026-01-06", "to": "2026-01-05"}, "to"),
        ({"from": "2026-01-01", "to": "2027-06-01"}, "to"),
        ({"from": "soon", "to": "2026-01-05"}, "from"),
    ):
        bad = await ask(http, **params)
        assert bad.status_code == 422, (params, bad.text)
        assert bad.json()["field"] == field, (params, bad.json())
        assert bad.json()["detail"].startswith(f"{field}:"), bad.json()
    missing = await http.get(ONCALL)
    assert missing.status_code == 422
    assert "schedule" in missing.text


async def test_anonymous_callers_are_refused(http: httpx.AsyncClient) -> None:
    refused = await http.get(ONCALL, params={"schedule": "ops"}, headers={"Authorization": ""})
    assert refused.status_code == 401
