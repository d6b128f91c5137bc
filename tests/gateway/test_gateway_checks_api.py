"""Checks through the API are written as in the YAML file (``timeout: 10s``), can be
replaced with PUT, and the file's own checks are read-only here."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import yaml

from services.gateway.app import Gateway
from shared import subjects
from shared.bus import EventBus
from shared.config import CheckConfig
from shared.events import CheckConfigured
from tests.gateway.gateway_standins import StandIns
from tests.waiting import eventually

API = "/api/monitoring"
CHECKS = f"{API}/synthetic/checks"


@pytest.fixture
async def owners(bus: EventBus) -> AsyncIterator[StandIns]:
    stand_ins = await StandIns(bus).serve_all()
    yield stand_ins
    for subscription in stand_ins.subscriptions:
        await subscription.unsubscribe()


async def test_a_check_pasted_from_the_yaml_file_is_taken_and_shown_the_same_way(
    client: httpx.AsyncClient, owners: StandIns
) -> None:
    written = """
name: shop home
type: http
url: http://shop.test/
method: HEAD
expected_status: 204
timeout: 2500ms
interval: 2m
failures_before_alert: 2
"""
    item = yaml.safe_load(written)
    created = await client.post(CHECKS, json=item)
    assert created.status_code == 201, created.text
    check = created.json()
    shown = {key: check[key] for key in item}
    assert shown == {**item, "timeout": "2500ms", "interval": "2m"}
    assert check["allow_unsafe_method"] is False
    # what the API shows is valid in the file
    assert CheckConfig.model_validate(shown).interval_s == 120.0

    # numbers of seconds are read too; the answer uses the duration form
    replaced = await client.put(
        f"{CHECKS}/{check['id']}", json={**item, "interval": 3600, "timeout": 10}
    )
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["interval"], replaced.json()["timeout"]) == ("1h", "10s")
    assert replaced.json()["version"] == check["version"] + 1


async def test_a_check_with_another_method_needs_it_allowed_and_says_so(
    client: httpx.AsyncClient, owners: StandIns
) -> None:
    item = {"name": "hook", "url": "http://shop.test/hook", "method": "POST"}
    refused = await client.post(CHECKS, json=item)
    assert refused.status_code == 422
    assert "allow_unsafe_method" in refused.json()["detail"]
    created = await client.post(CHECKS, json={**item, "allow_unsafe_method": True})
    assert created.status_code == 201, created.text
    assert created.json()["allow_unsafe_method"] is True
    # what GET shows can be sent back as it is
    shown = created.json()
    again = {key: shown[key] for key in (*item, "allow_unsafe_method", "timeout", "interval")}
    assert (await client.put(f"{CHECKS}/{shown['id']}", json=again)).status_code == 200


async def test_bad_check_fields_are_named(client: httpx.AsyncClient, owners: StandIns) -> None:
    base = {"name": "shop", "url": "http://shop.test/"}
    for change, field in [
        ({"interval": "soon"}, "interval"),
        ({"timeout": "-1s"}, "timeout"),
        ({"interval": "100ms"}, "interval"),
        ({"timeout_seconds": 3}, "timeout_seconds"),
        ({"type": "tcp"}, "type"),
    ]:
        response = await client.post(CHECKS, json={**base, **change})
        assert (change, response.status_code) == (change, 422)
        assert response.json()["field"] == field, response.json()


async def test_put_keeps_the_name_and_needs_the_check(
    client: httpx.AsyncClient, owners: StandIns
) -> None:
    item = {"name": "shop", "url": "http://shop.test/"}
    created = (await client.post(CHECKS, json=item)).json()
    renamed = await client.put(f"{CHECKS}/{created['id']}", json={**item, "name": "store"})
    assert (renamed.status_code, renamed.json()["field"]) == (422, "name")
    missing = await client.put(f"{CHECKS}/nope", json=item)
    assert (missing.status_code, missing.json()["field"]) == (404, "check_id")


async def test_a_check_from_the_file_is_read_only_through_the_api(
    client: httpx.AsyncClient, gateway: Gateway, bus: EventBus, owners: StandIns
) -> None:
    from_file = CheckConfigured(
        aggregate_id="filed", name="filed", url="http://shop.test/", source="config"
    )
    seq = await bus.publish(subjects.check_definition("filed"), from_file)
    await eventually(lambda: gateway.state.progress.applied.get("gateway-synthetic", 0) >= seq)

    item = {"name": "filed", "url": "http://other.test/"}
    for response in (
        await client.put(f"{CHECKS}/filed", json=item),
        await client.delete(f"{CHECKS}/filed"),
    ):
        assert response.status_code == 409
        assert "configuration file" in response.json()["detail"]
    assert (await client.get(f"{CHECKS}/filed")).json()["url"] == "http://shop.test/"
