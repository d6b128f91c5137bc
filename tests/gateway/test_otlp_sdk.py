"""The OpenTelemetry Python SDK's own OTLP/HTTP exporter sends an application's metrics
to a listening gateway; what it stored is what the specification's mapping gives."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import httpx
import pytest
import requests
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from services.gateway.app import Gateway
from shared import subjects
from shared.bus import EventBus
from shared.events import Sample, SamplesIngested
from shared.settings import Settings
from tests.gateway.identities import headers_for
from tests.waiting import eventually


async def stored(bus: EventBus) -> list[Sample]:
    recorded = await bus.read_subject(subjects.samples("api"))
    return [s for r in recorded if isinstance(r.event, SamplesIngested) for s in r.event.samples]


def record_and_export(endpoint: str, key: str, compression: Compression) -> None:
    """What an instrumented application does: record, then flush through the exporter."""
    session = requests.Session()
    session.trust_env = False  # straight to the local gateway, whatever proxy is set
    exporter = OTLPMetricExporter(
        endpoint=endpoint,
        headers={"Authorization": f"Bearer {key}"},
        compression=compression,
        session=session,
        timeout=10,
        preferred_temporality={Counter: AggregationTemporality.CUMULATIVE},
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    resource = Resource.create(
        {
            "service.name": "checkout",
            "service.namespace": "shop",
            "service.instance.id": "pod-1",
            "deployment.environment": "test",
        }
    )
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("shop.orders", "1.4.0")
    orders = meter.create_counter("shop.orders", unit="{order}", description="Orders taken")
    duration = meter.create_histogram("http.server.request.duration", unit="s")
    depth = meter.create_up_down_counter("queue.depth")

    def utilization(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(0.25, {"pool": "db"})

    meter.create_observable_gauge("pool.utilization", [utilization], unit="1")
    orders.add(3, {"shop": "north"})
    orders.add(2, {"shop": "north"})
    duration.record(0.02, {"http.route": "/pay"})
    duration.record(0.3, {"http.route": "/pay"})
    depth.add(4)
    depth.add(-1)
    provider.shutdown()  # collects once more and exports it, as at an application's exit


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
async def test_the_sdk_exporter_stores_what_the_application_recorded(
    gateway: Gateway,
    gateway_settings: Settings,
    bus: EventBus,
    compression: Compression,
) -> None:
    await eventually(lambda: gateway.http.started)
    base = f"http://127.0.0.1:{gateway_settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
        ingest = await headers_for(gateway.app, http, "ingest")
    key = ingest["Authorization"].removeprefix("Bearer ")
    await asyncio.to_thread(record_and_export, f"{base}/v1/metrics", key, compression)
    samples = await eventually(lambda: stored(bus), what="the export")
    by_name: dict[str, list[Sample]] = {}
    for sample in samples:
        by_name.setdefault(sample["name"], []).append(sample)

    identity = {"job": "shop/checkout", "instance": "pod-1"}
    scope = {**identity, "otel_scope_name": "shop.orders", "otel_scope_version": "1.4.0"}
    [orders] = by_name["shop_orders_total"]
    assert orders["value"] == 5.0
    assert orders["labels"] == {"shop": "north", **scope}
    [depth] = by_name["queue_depth"]
    assert depth["value"] == 3.0
    assert depth["labels"] == scope
    [pool] = by_name["pool_utilization_ratio"]
    assert pool["value"] == 0.25
    assert pool["labels"] == {"pool": "db", **scope}

    name = "http_server_request_duration_seconds"
    buckets = {s["labels"]["le"]: s["value"] for s in by_name[f"{name}_bucket"]}
    assert buckets["+Inf"] == 2.0
    assert all(s["labels"]["http_route"] == "/pay" for s in by_name[f"{name}_bucket"])
    values = [buckets[le] for le in sorted(buckets, key=lambda le: float(le))]
    assert values == sorted(values)  # cumulative
    assert [s["value"] for s in by_name[f"{name}_count"]] == [2.0]
    [total] = by_name[f"{name}_sum"]
    assert total["value"] == pytest.approx(0.32)

    [info] = by_name["target_info"]
    assert info["labels"]["deployment_environment"] == "test"
    assert info["labels"]["telemetry_sdk_language"] == "python"
    assert {k: info["labels"][k] for k in identity} == identity
    assert "service_name" not in info["labels"]
