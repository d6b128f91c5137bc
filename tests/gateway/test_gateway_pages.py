"""Lists page with an opaque cursor: every item once, in order, and an item added
between pages shifts nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from services.gateway.alerts.projector import project_alert
from services.gateway.alerts.queries import list_alerts
from services.gateway.app import Gateway, projection_store
from services.gateway.common.pagination import PageRequest
from shared import subjects
from shared.bus import EventBus
from shared.events import AlertFired, CheckConfigured
from shared.settings import Settings
from tests.waiting import eventually

API = "/api/monitoring"
T0 = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


async def fire(bus: EventBus, alert_id: str, minutes: int) -> int:
    event = AlertFired(
        aggregate_id=alert_id,
        rule="HighCPU",
        fingerprint=f"fp-{alert_id}",
        metric="system_cpu_percent",
        labels={},
        severity="critical",
        value=97.0,
        threshold=90.0,
        time=T0 + timedelta(minutes=minutes),
    )
    return await bus.publish(subjects.alert(alert_id), event, expected_last_subject_seq=0)


async def applied(gateway: Gateway, projection: str, seq: int) -> None:
    await eventually(lambda: gateway.state.progress.applied.get(projection, 0) >= seq)


async def test_alerts_page_newest_first_without_gaps_or_repeats(
    client: httpx.AsyncClient, gateway: Gateway, bus: EventBus
) -> None:
    # two alerts at the same minute: the id breaks the tie
    last = 0
    for alert_id, minute in [("a1", 1), ("a2", 2), ("a3", 3), ("a3b", 3), ("a4", 4)]:
        last = await fire(bus, alert_id, minute)
    await applied(gateway, "gateway-alerts", last)

    first = (await client.get(f"{API}/alerts?limit=2")).json()
    assert [a["id"] for a in first["items"]] == ["a4", "a3"]
    # an alert newer than everything arrives between pages: the next pages do not shift
    await applied(gateway, "gateway-alerts", await fire(bus, "a5", 5))
    second = (await client.get(f"{API}/alerts?limit=2&cursor={first['next_cursor']}")).json()
    assert [a["id"] for a in second["items"]] == ["a3b", "a2"]
    third = (await client.get(f"{API}/alerts?limit=2&cursor={second['next_cursor']}")).json()
    assert ([a["id"] for a in third["items"]], third["next_cursor"]) == (["a1"], None)

    whole = (await client.get(f"{API}/alerts")).json()
    assert [a["id"] for a in whole["items"]] == ["a5", "a4", "a3", "a3b", "a2", "a1"]
    assert whole["next_cursor"] is None


async def test_a_filter_holds_across_pages(
    client: httpx.AsyncClient, gateway: Gateway, bus: EventBus
) -> None:
    last = 0
    for index in range(5):
        event = CheckConfigured(
            aggregate_id=f"c{index}",
            name=f"check {index}",
            url="http://shop.test/",
            source="config" if index % 2 else "api",
        )
        last = await bus.publish(subjects.check_definition(f"c{index}"), event)
    await applied(gateway, "gateway-synthetic", last)
    names: list[str] = []
    cursor = ""
    while True:
        page = (await client.get(f"{API}/synthetic/checks?source=api&limit=1{cursor}")).json()
        names += [c["name"] for c in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert names == ["check 0", "check 2", "check 4"]


async def test_a_cursor_not_given_out_and_limits_out_of_range_are_refused(
    client: httpx.AsyncClient,
) -> None:
    for query, field in [
        ("cursor=bm9wZQ", "cursor"),
        ("cursor=%%%", "cursor"),
        ("cursor=WzEsMiwzXQ", "cursor"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
    ]:
        response = await client.get(f"{API}/alerts?{query}")
        assert (query, response.status_code) == (query, 422)
        assert response.json()["field"] == field
        assert response.json()["detail"].startswith(f"{field}: ")


async def test_keyset_pages_agree_on_sqlite_and_postgres(database_url: str) -> None:
    """Times and ids round-trip through the cursor on both databases."""
    store = projection_store(Settings(database_url=database_url))
    await store.reset()
    try:
        async with store.engine.begin() as conn:
            for index, alert_id in enumerate(["b", "a", "c", "d", "e"]):
                event = AlertFired(
                    aggregate_id=alert_id,
                    rule="HighCPU",
                    fingerprint=f"fp-{alert_id}",
                    metric="cpu",
                    labels={},
                    severity="critical",
                    value=1.0,
                    threshold=0.5,
                    time=T0 + timedelta(minutes=min(index, 2)),
                )
                await project_alert(conn, event, index + 1)
        seen: list[str] = []
        page = PageRequest(limit=2, cursor=None)
        while True:
            rows, next_cursor = await list_alerts(store.engine, None, None, page)
            seen += [row["id"] for row in rows]
            if next_cursor is None:
                break
            page = PageRequest(limit=2, cursor=next_cursor)
        # minute 2: c, d, e (by id); then minute 1: a; then minute 0: b
        assert seen == ["c", "d", "e", "a", "b"]
    finally:
        await store.drop_all()
        await store.dispose()
