"""DataDog: alert events as v1 events and selected metrics as v2 series, against a local
API that checks the documented bodies and keys."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from services.notifier.channels.datadog import deliver, event_for
from services.notifier.channels.http import RetryAfter
from services.notifier.datadog_series import Point, SeriesExporter, series_payload
from services.notifier.domain import notification_for
from shared.channelconfig import DatadogChannel, MessageTemplate
from shared.errors import PermanentDeliveryError, TransientDeliveryError
from shared.events import AlertFired, AlertResolved, IncidentOpened
from shared.events.metrics import Sample
from shared.outbound import OutboundGuard, OutboundPolicy
from tests.receivers.datadog import DatadogReceiver, check_event, check_series
from tests.waiting import eventually

FIRED = AlertFired(
    aggregate_id="alert-7",
    rule="cpu-high",
    fingerprint="fp-cpu-web1",
    metric="cpu",
    labels={"host": "web1", "env": "prod"},
    severity="critical",
    value=97.5,
    threshold=90,
)
RESOLVED = AlertResolved(
    aggregate_id="alert-7",
    rule="cpu-high",
    fingerprint="fp-cpu-web1",
    metric="cpu",
    labels={"host": "web1", "env": "prod"},
    severity="critical",
    value=40,
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with OutboundGuard(OutboundPolicy()).session() as client:
        yield client


@pytest.fixture
async def datadog() -> AsyncIterator[DatadogReceiver]:
    async with DatadogReceiver(api_key="k-123", app_key="app-456") as receiver:
        yield receiver


def channel(receiver: DatadogReceiver, **changes: Any) -> DatadogChannel:
    fields: dict[str, Any] = {
        "name": "dd",
        "type": "datadog",
        "api_key": receiver.api_key,
        "app_key": receiver.app_key or "",
        "api_url": receiver.url,
        "tags": ["team:sre"],
        "metrics": ["cpu", "http:requests"],
        "timeout": 2,
    }
    fields.update(changes)
    return DatadogChannel.model_validate(fields)


async def test_an_alert_becomes_a_documented_event(
    session: aiohttp.ClientSession, datadog: DatadogReceiver
) -> None:
    receipt = await deliver(session, channel(datadog), notification_for(FIRED, "dd"))
    assert receipt.status_code == 202
    await deliver(session, channel(datadog), notification_for(RESOLVED, "dd"))
    fired, resolved = datadog.events
    [headers] = [r.headers for r in datadog.received[:1]]
    assert headers["DD-API-KEY"] == "k-123" and headers["DD-APPLICATION-KEY"] == "app-456"
    assert fired["alert_type"] == "error" and fired["priority"] == "normal"
    assert resolved["alert_type"] == "success" and resolved["priority"] == "low"
    # one alert's events roll up together in DataDog
    assert fired["aggregation_key"] == resolved["aggregation_key"] == "fp-cpu-web1"
    assert fired["source_type_name"] == "vigil"
    assert fired["date_happened"] == int(FIRED.time.timestamp())
    assert fired["title"].startswith("CRITICAL cpu-high firing")
    assert {"team:sre", "rule:cpu-high", "severity:critical", "host:web1", "env:prod"} <= set(
        fired["tags"]
    )
    assert "#/alerts/alert-7" in fired["text"]
    assert not datadog.rejected


async def test_the_application_key_is_sent_only_when_set(session: aiohttp.ClientSession) -> None:
    async with DatadogReceiver(api_key="k-123") as receiver:
        await deliver(session, channel(receiver), notification_for(FIRED, "dd"))
        [request] = receiver.received
    assert "DD-APPLICATION-KEY" not in request.headers


def test_event_fields_follow_the_template_and_the_limits() -> None:
    dd = DatadogChannel.model_validate(
        {"name": "dd", "type": "datadog", "api_key": "k", "template": {"title": "x" * 300}}
    )
    body = event_for(dd, notification_for(FIRED, "dd"))
    check_event(body)
    assert body["title"] == "x" * 100
    templated = dd.model_copy(
        update={
            "template": MessageTemplate(
                title="{{ alert.rule }}!", text="on {{ alert.labels.host }}"
            )
        }
    )
    body = event_for(templated, notification_for(FIRED, "dd"))
    assert body["title"] == "cpu-high!" and body["text"].startswith("on web1")
    incident = IncidentOpened(aggregate_id="inc-1", title="API down", severity="warning")
    body = event_for(dd.model_copy(update={"template": None}), notification_for(incident, "dd"))
    check_event(body)
    assert body["alert_type"] == "warning" and body["aggregation_key"] == "inc-1"


@pytest.mark.parametrize(
    ("status", "error", "match"),
    [
        (500, TransientDeliveryError, "HTTP 500"),
        (503, TransientDeliveryError, "HTTP 503"),
        (400, PermanentDeliveryError, "HTTP 400"),
    ],
)
async def test_failures_map_to_transient_and_permanent(
    session: aiohttp.ClientSession,
    datadog: DatadogReceiver,
    status: int,
    error: type,
    match: str,
) -> None:
    datadog.fail_next(status)
    with pytest.raises(error, match=match):
        await deliver(session, channel(datadog), notification_for(FIRED, "dd"))


async def test_rate_limited_and_wrong_key_and_slow(
    session: aiohttp.ClientSession, datadog: DatadogReceiver
) -> None:
    datadog.fail_next(429, retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await deliver(session, channel(datadog), notification_for(FIRED, "dd"))
    assert caught.value.retry_after_s == 7
    with pytest.raises(PermanentDeliveryError, match="HTTP 403"):
        await deliver(session, channel(datadog, api_key="wrong"), notification_for(FIRED, "dd"))
    assert not datadog.events
    datadog.delay_s = 1.0
    with pytest.raises(TransientDeliveryError, match="timed out"):
        await deliver(session, channel(datadog, timeout=0.3), notification_for(FIRED, "dd"))


# --- series ---------------------------------------------------------------------------


def samples(name: str, values: list[float], **labels: str) -> list[Sample]:
    now = time.time()
    return [
        {"name": name, "value": v, "timestamp": now - len(values) + i, "labels": labels}
        for i, v in enumerate(values)
    ]


async def test_selected_metrics_go_out_as_series(
    session: aiohttp.ClientSession, datadog: DatadogReceiver
) -> None:
    exporter = SeriesExporter(channel(datadog), session, batch_size=3)
    assert exporter.add_samples(samples("cpu", [1, 2, 3, 4], host="web1", core="0"), 0) == 4
    assert exporter.add_samples(samples("memory", [9]), 0) == 0  # not selected
    exporter.add_samples([{"name": "http:requests", "value": 5.0, "labels": {}}], time.time())
    assert await exporter.flush() == 5
    assert len(datadog.received) == 2  # batches of at most 3 points
    assert datadog.points("cpu") == [1, 2, 3, 4]
    assert datadog.points("http_requests") == [5.0]  # ':' is not allowed in DataDog names
    cpu = next(s for s in datadog.series if s["metric"] == "cpu")
    assert cpu["type"] == 3
    assert cpu["tags"] == ["team:sre", "core:0"]
    assert cpu["resources"] == [{"name": "web1", "type": "host"}]
    assert all(r.headers["DD-API-KEY"] == "k-123" for r in datadog.received)
    assert not datadog.rejected
    assert exporter.status()["sent"] == 5


async def test_a_receiver_down_keeps_the_newest_and_counts_the_dropped(
    session: aiohttp.ClientSession, datadog: DatadogReceiver
) -> None:
    exporter = SeriesExporter(channel(datadog), session, capacity=5, batch_size=2)
    exporter.add_samples(samples("cpu", [1, 2, 3, 4, 5, 6, 7]), 0)
    assert exporter.dropped == 2  # the two oldest made room
    datadog.fail_next(500)
    assert await exporter.flush() == 0
    assert (
        len(exporter.buffer) == 5
        and exporter.status()["last_error"] == "HTTP 500 Internal Server Error"
    )
    # while it is down, new samples push out the oldest, including the batch put back
    exporter.add_samples(samples("cpu", [8, 9]), 0)
    assert exporter.dropped == 4
    assert await exporter.flush() == 5
    assert datadog.points("cpu") == [5, 6, 7, 8, 9]
    assert exporter.status()["last_error"] is None


async def test_a_refused_batch_is_dropped_not_retried(
    session: aiohttp.ClientSession, datadog: DatadogReceiver
) -> None:
    exporter = SeriesExporter(channel(datadog, api_key="wrong"), session, batch_size=2)
    exporter.add_samples(samples("cpu", [1, 2, 3]), 0)
    assert await exporter.flush() == 0
    assert exporter.rejected == 3 and not exporter.buffer
    assert len(datadog.received) == 2 and len(datadog.rejected) == 2


def test_the_payload_is_the_documented_v2_body() -> None:
    now = int(time.time())
    points = [
        Point("cpu", ("env:prod",), "web1", now, 1.0),
        Point("cpu", ("env:prod",), "web1", now + 1, 2.0),
        Point("cpu", ("env:dev",), None, now, 3.0),
    ]
    body = series_payload(points)
    check_series(body)
    assert body["series"][0]["points"] == [
        {"timestamp": now, "value": 1.0},
        {"timestamp": now + 1, "value": 2.0},
    ]
    assert "resources" not in body["series"][1]


async def test_run_forever_flushes_on_its_interval(
    session: aiohttp.ClientSession, datadog: DatadogReceiver
) -> None:
    exporter = SeriesExporter(channel(datadog), session, interval_s=0.05)
    task = asyncio.create_task(exporter.run_forever())
    try:
        exporter.add("cpu", {"host": "web1"}, 1.5)
        await eventually(lambda: datadog.series, 5, "a series")
    finally:
        task.cancel()
    assert datadog.points("cpu") == [1.5]


def test_unselected_channel_takes_nothing() -> None:
    dd = DatadogChannel.model_validate({"name": "dd", "type": "datadog", "api_key": "k"})
    exporter = SeriesExporter(dd, session=None)  # type: ignore[arg-type]
    assert exporter.add_samples(samples("cpu", [1]), 0) == 0
    assert not exporter.add("cpu", {}, 1.0)
