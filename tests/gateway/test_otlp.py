"""POST /v1/metrics and /api/v1/otlp/v1/metrics: OTLP/HTTP exports, protobuf and JSON,
mapped to samples as OpenTelemetry's Prometheus compatibility specification says and
stored as one batch, or refused with a google.rpc.Status naming the problem."""

from __future__ import annotations

import gzip
import time
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from services.gateway.app import Gateway
from services.gateway.metrics.otlp_names import float_text, labels_of, metric_name
from services.gateway.metrics.remote_write import MAX_DECODED_BYTES
from shared import subjects
from shared.bus import EventBus
from shared.events import MAX_BATCH_SAMPLES, Sample, SamplesIngested
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.backlog import fall_behind, gateway_behind, metrics_running
from tests.gateway.identities import ADMIN, headers_for

PATHS = ["/v1/metrics", "/api/v1/otlp/v1/metrics"]
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
CUMULATIVE = pb.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = pb.AGGREGATION_TEMPORALITY_DELTA


async def stored(bus: EventBus) -> list[SamplesIngested]:
    recorded = await bus.read_subject(subjects.samples("api"))
    return [r.event for r in recorded if isinstance(r.event, SamplesIngested)]


def now_ns() -> int:
    return time.time_ns() - 5_000_000_000


def attrs(**values: Any) -> list[KeyValue]:
    """Attributes from keyword arguments; ``__`` in a name stands for a dot."""
    out = []
    for key, value in values.items():
        key = key.replace("__", ".")
        if isinstance(value, bool):
            any_value = AnyValue(bool_value=value)
        elif isinstance(value, int):
            any_value = AnyValue(int_value=value)
        elif isinstance(value, float):
            any_value = AnyValue(double_value=value)
        elif isinstance(value, list):
            any_value = AnyValue(
                array_value=ArrayValue(values=[AnyValue(string_value=v) for v in value])
            )
        else:
            any_value = AnyValue(string_value=value)
        out.append(KeyValue(key=key, value=any_value))
    return out


def export(
    *metrics: pb.Metric,
    resource: list[KeyValue] | None = None,
    scope: InstrumentationScope | None = None,
) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            pb.ResourceMetrics(
                resource=Resource(attributes=resource or attrs(service__name="checkout")),
                scope_metrics=[
                    pb.ScopeMetrics(
                        scope=scope or InstrumentationScope(name="shop.orders"),
                        metrics=list(metrics),
                    )
                ],
            )
        ]
    )


def gauge(name: str, value: float, ns: int, unit: str = "", **labels: Any) -> pb.Metric:
    point = pb.NumberDataPoint(attributes=attrs(**labels), time_unix_nano=ns, as_double=value)
    return pb.Metric(name=name, unit=unit, gauge=pb.Gauge(data_points=[point]))


async def post(
    client: httpx.AsyncClient, body: bytes, path: str = PATHS[0], **headers: str
) -> httpx.Response:
    return await client.post(path, content=body, headers={**PROTOBUF, **headers})


def partial(response: httpx.Response) -> ExportMetricsServiceResponse:
    assert response.headers["content-type"] == "application/x-protobuf"
    return ExportMetricsServiceResponse.FromString(response.content)


def status(response: httpx.Response) -> Status:
    assert response.headers["content-type"] == "application/x-protobuf", response.text
    return Status.FromString(response.content)


@pytest.mark.parametrize("path", PATHS)
async def test_every_metric_kind_is_mapped_as_the_specification_says(
    client: httpx.AsyncClient, bus: EventBus, path: str
) -> None:
    ns = now_ns()
    t = ns / 1e9
    resource = attrs(
        service__name="checkout",
        service__namespace="shop",
        service__instance__id="pod-7",
        host__name="web-1",
        process__pid=4242,
    )
    scope = InstrumentationScope(name="shop.orders", version="1.2.0")
    no_value = pb.NumberDataPoint(
        time_unix_nano=ns, as_double=9.0, flags=pb.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
    )
    request = export(
        gauge("system.memory.utilization", 0.5, ns, unit="1", state="used"),
        pb.Metric(gauge=pb.Gauge(data_points=[no_value]), name="skipped"),
        pb.Metric(
            name="http.server.requests",
            unit="{request}",
            sum=pb.Sum(
                aggregation_temporality=CUMULATIVE,
                is_monotonic=True,
                data_points=[
                    pb.NumberDataPoint(
                        attributes=attrs(http__route="/pay", http__response__status_code=200),
                        start_time_unix_nano=ns - 60_000_000_000,
                        time_unix_nano=ns,
                        as_int=7,
                    )
                ],
            ),
        ),
        pb.Metric(
            name="queue.size",
            sum=pb.Sum(
                aggregation_temporality=CUMULATIVE,
                is_monotonic=False,
                data_points=[pb.NumberDataPoint(time_unix_nano=ns, as_int=-3)],
            ),
        ),
        pb.Metric(
            name="http.server.request.duration",
            unit="s",
            histogram=pb.Histogram(
                aggregation_temporality=CUMULATIVE,
                data_points=[
                    pb.HistogramDataPoint(
                        attributes=attrs(http__route="/pay"),
                        time_unix_nano=ns,
                        count=6,
                        sum=2.5,
                        explicit_bounds=[0.1, 1.0],
                        bucket_counts=[2, 3, 1],
                        min=0.01,
                        max=3.0,
                    )
                ],
            ),
        ),
        pb.Metric(
            name="rpc.latency",
            unit="ms",
            summary=pb.Summary(
                data_points=[
                    pb.SummaryDataPoint(
                        time_unix_nano=ns,
                        count=5,
                        sum=100.0,
                        quantile_values=[
                            pb.SummaryDataPoint.ValueAtQuantile(quantile=0.99, value=40.0),
                            pb.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=10.0),
                        ],
                    )
                ]
            ),
        ),
        pb.Metric(
            name="bytes.sent",
            unit="By",
            sum=pb.Sum(
                aggregation_temporality=DELTA,
                is_monotonic=True,
                data_points=[pb.NumberDataPoint(time_unix_nano=ns, as_int=1)] * 2,
            ),
        ),
        pb.Metric(
            name="latency.exp",
            exponential_histogram=pb.ExponentialHistogram(
                aggregation_temporality=CUMULATIVE,
                data_points=[pb.ExponentialHistogramDataPoint(time_unix_nano=ns, count=1)],
            ),
        ),
        resource=resource,
        scope=scope,
    )
    response = await post(client, request.SerializeToString(), path)
    assert response.status_code == 200, response.text
    answer = partial(response)
    assert answer.partial_success.rejected_data_points == 3
    assert "2 with delta or unspecified temporality" in answer.partial_success.error_message
    assert "1 of exponential histograms" in answer.partial_success.error_message

    common = {
        "job": "shop/checkout",
        "instance": "pod-7",
        "otel_scope_name": "shop.orders",
        "otel_scope_version": "1.2.0",
    }
    route = {**common, "http_route": "/pay"}
    duration = "http_server_request_duration_seconds"
    [event] = await stored(bus)
    assert event.samples == [
        Sample(
            name="system_memory_utilization_ratio",
            value=0.5,
            timestamp=t,
            labels={"state": "used", **common},
        ),
        Sample(
            name="http_server_requests_total",
            value=7.0,
            timestamp=t,
            labels={**route, "http_response_status_code": "200"},
        ),
        Sample(name="queue_size", value=-3.0, timestamp=t, labels=common),
        Sample(name=f"{duration}_bucket", value=2.0, timestamp=t, labels={**route, "le": "0.1"}),
        Sample(name=f"{duration}_bucket", value=5.0, timestamp=t, labels={**route, "le": "1"}),
        Sample(name=f"{duration}_bucket", value=6.0, timestamp=t, labels={**route, "le": "+Inf"}),
        Sample(name=f"{duration}_sum", value=2.5, timestamp=t, labels=route),
        Sample(name=f"{duration}_count", value=6.0, timestamp=t, labels=route),
        Sample(
            name="rpc_latency_milliseconds",
            value=10.0,
            timestamp=t,
            labels={**common, "quantile": "0.5"},
        ),
        Sample(
            name="rpc_latency_milliseconds",
            value=40.0,
            timestamp=t,
            labels={**common, "quantile": "0.99"},
        ),
        Sample(name="rpc_latency_milliseconds_sum", value=100.0, timestamp=t, labels=common),
        Sample(name="rpc_latency_milliseconds_count", value=5.0, timestamp=t, labels=common),
        Sample(
            name="target_info",
            value=1.0,
            timestamp=t,
            labels={
                "job": "shop/checkout",
                "instance": "pod-7",
                "host_name": "web-1",
                "process_pid": "4242",
            },
        ),
    ]


OTLP_JSON = """{
  "resourceMetrics": [{
    "resource": {"attributes": [
      {"key": "service.name", "value": {"stringValue": "checkout"}},
      {"key": "deployment.environment", "value": {"stringValue": "prod"}}
    ]},
    "scopeMetrics": [{
      "scope": {"name": "shop.orders", "version": "2"},
      "metrics": [
        {"name": "orders.placed", "unit": "{order}", "description": "Orders",
         "sum": {"aggregationTemporality": 2, "isMonotonic": true, "dataPoints": [
           {"asInt": "12", "timeUnixNano": "%(ns)s", "startTimeUnixNano": "1",
            "attributes": [{"key": "shop", "value": {"stringValue": "north"}}],
            "exemplars": [{"asDouble": 1.0, "timeUnixNano": "%(ns)s",
              "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}]}
         ]}},
        {"name": "http.server.duration", "unit": "ms",
         "histogram": {"aggregationTemporality": 2, "dataPoints": [
           {"timeUnixNano": %(ns)s, "count": "3", "sum": 30.5,
            "explicitBounds": [10, 100], "bucketCounts": ["1", "2", "0"]}
         ]}},
        {"name": "mem.usage", "gauge": {"dataPoints": [
           {"asDouble": 1.5e9, "timeUnixNano": "%(ns)s", "someFutureField": true}
         ]}},
        {"name": "jobs.delta", "sum": {"aggregationTemporality": 1, "dataPoints": [
           {"asInt": "1", "timeUnixNano": "%(ns)s"}]}}
      ]
    }]
  }]
}"""


@pytest.mark.parametrize("path", PATHS)
async def test_otlp_json_is_read_with_its_own_rules_and_answered_in_json(
    client: httpx.AsyncClient, bus: EventBus, path: str
) -> None:
    """lowerCamelCase names, int64 as strings (or numbers), enums as integers, hex ids in
    exemplars, unknown fields ignored; the answer is OTLP JSON too."""
    ns = now_ns()
    t = ns / 1e9
    body = (OTLP_JSON % {"ns": ns}).encode()
    response = await client.post(path, content=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "partialSuccess": {
            "rejectedDataPoints": "1",
            "errorMessage": "data points not stored: 1 with delta or unspecified "
            "temporality (send cumulative temporality)",
        }
    }
    common = {"job": "checkout", "otel_scope_name": "shop.orders", "otel_scope_version": "2"}
    [event] = await stored(bus)
    duration = "http_server_duration_milliseconds"
    assert event.samples == [
        Sample(
            name="orders_placed_total", value=12.0, timestamp=t, labels={"shop": "north", **common}
        ),
        Sample(name=f"{duration}_bucket", value=1.0, timestamp=t, labels={**common, "le": "10"}),
        Sample(name=f"{duration}_bucket", value=3.0, timestamp=t, labels={**common, "le": "100"}),
        Sample(name=f"{duration}_bucket", value=3.0, timestamp=t, labels={**common, "le": "+Inf"}),
        Sample(name=f"{duration}_sum", value=30.5, timestamp=t, labels=common),
        Sample(name=f"{duration}_count", value=3.0, timestamp=t, labels=common),
        Sample(name="mem_usage", value=1.5e9, timestamp=t, labels=common),
        Sample(
            name="target_info",
            value=1.0,
            timestamp=t,
            labels={"job": "checkout", "deployment_environment": "prod"},
        ),
    ]


async def test_a_fully_accepted_export_answers_an_empty_response(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    body = export(gauge("up", 1.0, now_ns())).SerializeToString()
    response = await post(client, body)
    assert response.status_code == 200
    assert response.content == b""  # an ExportMetricsServiceResponse with nothing set
    empty = await post(client, b"")  # the empty request, protobuf's zero bytes
    assert empty.status_code == 200
    assert empty.content == b""
    as_json = await client.post(PATHS[0], content=b'{"resourceMetrics": []}', headers=JSON)
    assert as_json.status_code == 200
    assert as_json.json() == {}
    assert len(await stored(bus)) == 1


async def test_gzip_bodies_are_read_and_a_retried_body_is_stored_once(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    body = gzip.compress(
        export(gauge("temperature", 21.5, now_ns(), unit="Cel")).SerializeToString()
    )
    for _ in range(2):  # the exporter retrying after a lost answer
        response = await post(client, body, **{"Content-Encoding": "gzip"})
        assert response.status_code == 200, response.text
    [event] = await stored(bus)
    assert [s["name"] for s in event.samples] == ["temperature_celsius"]


@pytest.mark.parametrize(
    ("body", "headers", "says"),
    [
        (b"\x0a\x05\x0a\x03", PROTOBUF, "not a protobuf ExportMetricsServiceRequest"),
        (b"\xff\xff\xff", PROTOBUF, "not a protobuf ExportMetricsServiceRequest"),
        (b"not json", JSON, "not valid JSON"),
        (b"[1, 2]", JSON, "must be a JSON object"),
        (b'{"resourceMetrics": 3}', JSON, "not an OTLP JSON ExportMetricsServiceRequest"),
        (
            b'{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"gauge": '
            b'{"dataPoints": [{"asInt": "twelve"}]}}]}]}]}',
            JSON,
            "not an OTLP JSON ExportMetricsServiceRequest",
        ),
        (b"plain bytes", {**PROTOBUF, "Content-Encoding": "gzip"}, "not gzip"),
        (
            gzip.compress(b"\x0a\x05\x0a\x03")[:-12],
            {**PROTOBUF, "Content-Encoding": "gzip"},
            "cut short",
        ),
    ],
)
async def test_an_undecodable_body_is_400_with_a_status(
    client: httpx.AsyncClient, bus: EventBus, body: bytes, headers: dict[str, str], says: str
) -> None:
    response = await client.post(PATHS[0], content=body, headers=headers)
    assert response.status_code == 400, response.text
    if headers["Content-Type"] == "application/json":
        assert response.headers["content-type"] == "application/json"
        assert response.json()["code"] == 3  # INVALID_ARGUMENT
        message = response.json()["message"]
    else:
        answer = status(response)
        assert answer.code == 3
        message = answer.message
    assert message.startswith("body: ")
    assert says in message, message
    assert await stored(bus) == []


async def test_an_invalid_sample_refuses_the_whole_export_and_names_the_metric(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    ns = now_ns()
    good = gauge("up", 1.0, ns)
    wide = gauge("wide", 1.0, ns, **{f"l{i}": "v" for i in range(70)})
    old = gauge("old", 1.0, 1_000_000_000)
    long_value = gauge("long", 1.0, ns, path="x" * 600)
    cases = [
        (wide, "resourceMetrics[0].scopeMetrics[0].metrics[1].labels", "labels"),
        (old, "resourceMetrics[0].scopeMetrics[0].metrics[1].dataPoints.timeUnixNano", "older"),
        (long_value, 'resourceMetrics[0].scopeMetrics[0].metrics[1].labels["path"]', "longer"),
    ]
    for bad, where, says in cases:
        response = await post(client, export(good, bad).SerializeToString())
        assert response.status_code == 422, response.text
        message = status(response).message
        assert message.startswith(where + ":"), message
        assert says in message, message
        assert f"(metric {bad.name}" in message, message
    assert await stored(bus) == []


async def test_limits_are_413(client: httpx.AsyncClient, bus: EventBus) -> None:
    # each bucket is one sample: a histogram with more buckets than a batch holds
    bounds = [float(i) for i in range(MAX_BATCH_SAMPLES)]
    many = pb.Metric(
        name="wide",
        histogram=pb.Histogram(
            aggregation_temporality=CUMULATIVE,
            data_points=[
                pb.HistogramDataPoint(
                    time_unix_nano=now_ns(),
                    count=0,
                    explicit_bounds=bounds,
                    bucket_counts=[0] * (len(bounds) + 1),
                )
            ],
        ),
    )
    response = await post(client, export(many).SerializeToString())
    assert response.status_code == 413
    assert "more than" in status(response).message
    bomb = gzip.compress(b"\x00" * (MAX_DECODED_BYTES + 1))
    response = await post(client, bomb, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "decompresses to more than" in status(response).message
    assert await stored(bus) == []


async def test_other_media_types_and_encodings_are_415(client: httpx.AsyncClient) -> None:
    text = await client.post(PATHS[0], content=b"up 1", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    brotli = await post(client, b"", **{"Content-Encoding": "br"})
    assert brotli.status_code == 415
    assert status(brotli).message.startswith("Content-Encoding: br")


async def test_only_an_ingest_key_may_export(client: httpx.AsyncClient, gateway: Gateway) -> None:
    body = export(gauge("up", 1.0, now_ns())).SerializeToString()
    for path in PATHS:
        anonymous = await post(client, body, path, Authorization="")
        assert anonymous.status_code == 401
        wrong = await post(client, body, path, Authorization="Bearer not-a-key")
        assert wrong.status_code == 401
    viewer = await headers_for(gateway.app, client, "viewer")
    assert (await post(client, body, **viewer)).status_code == 403
    ingest = await headers_for(gateway.app, client, "ingest")
    assert (await post(client, body, **ingest)).status_code == 200


def test_names_follow_the_specification() -> None:
    cases = [
        ("http.server.request.duration", "s", "histogram", "http_server_request_duration_seconds"),
        ("http.server.active_requests", "{request}", "gauge", "http_server_active_requests"),
        ("process.cpu.utilization", "1", "gauge", "process_cpu_utilization_ratio"),
        ("errors", "1", "counter", "errors_total"),
        ("requests_total", "", "counter", "requests_total"),
        ("system.network.io", "By", "counter", "system_network_io_bytes_total"),
        ("throughput", "By/s", "gauge", "throughput_bytes_per_second"),
        ("rate", "{packet}/s", "gauge", "rate_per_second"),
        ("latency_seconds", "s", "histogram", "latency_seconds"),
        ("disk..free--space", "MiBy", "gauge", "disk_free_space_mebibytes"),
        ("2xx.count", "", "gauge", "_2xx_count"),
        ("custom", "widgets", "gauge", "custom_widgets"),
        ("...", "s", "gauge", ""),
    ]
    for name, unit, kind, expected in cases:
        assert metric_name(name, unit, kind) == expected, (name, unit, kind)  # type: ignore[arg-type]
    assert [float_text(x) for x in (0.005, 1.0, 250.0, 1e-9, float("inf"))] == [
        "0.005",
        "1",
        "250",
        "0.000000001",
        "+Inf",
    ]


def test_attributes_become_labels_and_colliding_keys_are_joined() -> None:
    labels = labels_of(
        attrs(
            http__route="/a",
            http_route="/b",
            **{"1st": "x", "ok": True, "n": 2.5, "tags": ["a", "b"], "empty": ""},
        )
    )
    assert labels == {
        "http_route": "/a;/b",  # "http.route" < "http_route"
        "key_1st": "x",
        "ok": "true",
        "n": "2.5",
        "tags": '["a","b"]',
        "empty": "",
    }


async def test_points_without_usable_values_are_counted_not_stored(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    ns = now_ns()
    request = export(
        pb.Metric(
            name="nothing", gauge=pb.Gauge(data_points=[pb.NumberDataPoint(time_unix_nano=ns)])
        ),
        gauge("nan", float("nan"), ns),
        pb.Metric(
            name="bad.buckets",
            histogram=pb.Histogram(
                aggregation_temporality=CUMULATIVE,
                data_points=[
                    pb.HistogramDataPoint(
                        time_unix_nano=ns, count=1, explicit_bounds=[1.0], bucket_counts=[1]
                    )
                ],
            ),
        ),
        gauge("!!!", 1.0, ns),
    )
    response = await post(client, request.SerializeToString())
    assert response.status_code == 200, response.text
    answer = partial(response).partial_success
    assert answer.rejected_data_points == 4
    for why in ("1 without a value", "1 with a NaN", "1 of histograms whose", "1 of metrics whose"):
        assert why in answer.error_message
    assert await stored(bus) == []


async def test_job_and_instance_come_from_the_service_and_target_info_from_the_rest(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    ns = now_ns()
    t = ns / 1e9
    only_service = export(gauge("a", 1.0, ns), resource=attrs(service__name="api"))
    no_service = export(
        gauge("b", 2.0, ns, job="batch"),
        resource=attrs(service__namespace="ops", host__name="web-2"),
        scope=InstrumentationScope(name="", version=""),
    )
    request = ExportMetricsServiceRequest(
        resource_metrics=[*only_service.resource_metrics, *no_service.resource_metrics]
    )
    response = await post(client, request.SerializeToString())
    assert response.status_code == 200, response.text
    [event] = await stored(bus)
    assert event.samples == [
        Sample(
            name="a",
            value=1.0,
            timestamp=t,
            labels={"job": "api", "otel_scope_name": "shop.orders"},
        ),
        # no service.name: no job from the resource, so the point's own job label stays
        Sample(name="b", value=2.0, timestamp=t, labels={"job": "batch"}),
        Sample(
            name="target_info",
            value=1.0,
            timestamp=t,
            labels={"service_namespace": "ops", "host_name": "web-2"},
        ),
    ]


async def test_a_store_behind_is_429_with_retry_after_in_the_exporters_encoding(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    """Exporters retry 429 after Retry-After; the Status says why."""
    gateway = await gateway_behind(settings, start_service, max_backlog=1)
    await fall_behind(bus, gateway, "metrics-store", 3)
    await metrics_running(bus, gateway)
    body = export(gauge("up", 1.0, now_ns()))
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers=ADMIN
    ) as http:
        refused = await post(http, body.SerializeToString())
        as_json = await http.post(
            PATHS[1], content=json_format.MessageToJson(body).encode(), headers=JSON
        )
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    answer = status(refused)
    assert answer.code == 8  # RESOURCE_EXHAUSTED
    assert "metrics-store is 3 batches behind (limit 1)" in answer.message
    assert as_json.status_code == 429
    assert "metrics-store is 3 batches behind" in as_json.json()["message"]
    assert await stored(bus) == []
