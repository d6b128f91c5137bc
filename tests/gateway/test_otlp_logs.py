"""POST /v1/logs and /api/v1/otlp/v1/logs: the OpenTelemetry SDK's own log exporter, and
hand-built requests (protobuf and OTLP JSON, gzip), mapped as the log data model says,
stored whole or refused whole with a google.rpc.Status naming the record."""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from typing import Any

import httpx
import orjson
import pytest
import requests
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from services.gateway.app import Gateway
from shared import subjects
from shared.bus import EventBus
from shared.events import LogEntry, LogsIngested
from shared.events.logs import MAX_MESSAGE_BYTES
from shared.settings import Settings
from tests.gateway.identities import ADMIN, headers_for
from tests.waiting import eventually

PATHS = ["/v1/logs", "/api/v1/otlp/v1/logs"]
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


async def stored(bus: EventBus) -> list[LogsIngested]:
    recorded = await bus.read_subject(subjects.log_entries("otlp"))
    return [r.event for r in recorded if isinstance(r.event, LogsIngested)]


async def entries(bus: EventBus) -> list[LogEntry]:
    return [e for event in await stored(bus) for e in event.entries]


def export_through_sdk(endpoint: str, key: str, compression: Compression) -> None:
    """What an application with the SDK's logging handler does: log, then shut down."""
    session = requests.Session()
    session.trust_env = False
    exporter = OTLPLogExporter(
        endpoint=endpoint,
        headers={"Authorization": f"Bearer {key}"},
        compression=compression,
        session=session,
        timeout=10,
    )
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "checkout", "deployment.environment": "test"})
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("shop.payments")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    logger.addHandler(handler)
    try:
        logger.warning("card declined for order %s", "o-17", extra={"order": "o-17", "amount": 42})
        logger.debug("retrying payment")
    finally:
        logger.removeHandler(handler)
        provider.shutdown()


# the SDK's own LoggingHandler, deprecated in favour of a separate instrumentation package
# that is not installed; what it hands the exporter is the same
@pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
async def test_the_sdk_exporter_stores_the_applications_log_records(
    gateway: Gateway, gateway_settings: Settings, bus: EventBus, compression: Compression
) -> None:
    await eventually(lambda: gateway.http.started)
    base = f"http://127.0.0.1:{gateway_settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
        ingest = await headers_for(gateway.app, http, "ingest")
    key = ingest["Authorization"].removeprefix("Bearer ")
    before = time.time()
    await asyncio.to_thread(export_through_sdk, f"{base}/v1/logs", key, compression)

    async def both() -> list[LogEntry] | None:
        found = await entries(bus)
        return found if len(found) == 2 else None

    declined, retrying = await eventually(both, what="the export")
    assert declined["message"] == "card declined for order o-17"
    assert declined["level"] == "warn"
    assert declined["service"] == "checkout"
    assert declined["labels"]["order"] == "o-17"
    assert declined["labels"]["deployment_environment"] == "test"
    assert declined["labels"]["otel_scope_name"] == "shop.payments"
    assert declined["labels"]["telemetry_sdk_language"] == "python"
    assert "service_name" not in declined["labels"]
    assert declined["fields"]["amount"] == 42
    assert before - 1 <= (declined["timestamp"] or 0) <= time.time()
    assert retrying["message"] == "retrying payment"
    assert retrying["level"] == "debug"


def any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {
            "kvlistValue": {"values": [{"key": k, "value": any_value(v)} for k, v in value.items()]}
        }
    return {"stringValue": value}


def attributes(**values: Any) -> list[dict[str, Any]]:
    return [{"key": k.replace("__", "."), "value": any_value(v)} for k, v in values.items()]


def request_json(*records: dict[str, Any], service: str = "api") -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": attributes(service__name=service, host__name="web-1")},
                "scopeLogs": [
                    {
                        "scope": {"name": "app.http", "attributes": attributes(team="core")},
                        "logRecords": list(records),
                    }
                ],
            }
        ]
    }


def now_ns(ago_s: float = 5.0) -> str:
    return str(time.time_ns() - int(ago_s * 1e9))


def to_protobuf(body: dict[str, Any]) -> bytes:
    from google.protobuf import json_format

    from services.gateway.logs.otlp import _ids_to_base64

    request = ExportLogsServiceRequest()
    json_format.ParseDict(_ids_to_base64(body), request)
    return request.SerializeToString()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("encoding", ["json", "protobuf", "gzip"])
async def test_records_are_mapped_as_the_log_data_model_says(
    client: httpx.AsyncClient, bus: EventBus, path: str, encoding: str
) -> None:
    body = request_json(
        {
            "timeUnixNano": now_ns(10),
            "severityNumber": 17,
            "severityText": "ERROR",
            "body": {"stringValue": "upstream timed out"},
            "attributes": attributes(
                http__route="/pay", retries=3, cached=False, ratio=0.5, tags=["a", "b"]
            ),
            "traceId": TRACE.upper(),
            "spanId": SPAN,
        },
        {
            "observedTimeUnixNano": now_ns(8),
            "severityText": "warning",
            "body": {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}},
            "attributes": attributes(team="payments"),
        },
        {"severityNumber": 22, "body": {"stringValue": "bad\u0001byte"}},
        {"severityNumber": 9, "attributes": attributes(only="attributes")},
    )
    if encoding == "json":
        response = await client.post(path, content=orjson.dumps(body), headers=JSON)
    else:
        raw = to_protobuf(body)
        headers = {**PROTOBUF, **({"Content-Encoding": "gzip"} if encoding == "gzip" else {})}
        response = await client.post(
            path, content=gzip.compress(raw) if encoding == "gzip" else raw, headers=headers
        )
    assert response.status_code == 200, response.text
    if encoding == "json":
        answer = response.json()["partialSuccess"]
        assert answer["rejectedLogRecords"] == "1"
        assert "without a body" in answer["errorMessage"]
    else:
        parsed = ExportLogsServiceResponse.FromString(response.content)
        assert parsed.partial_success.rejected_log_records == 1
    [event] = await stored(bus)
    first, second, third = event.entries
    assert first["message"] == "upstream timed out"
    assert first["level"] == "error"
    assert first["service"] == "api"
    assert first["labels"] == {
        "http_route": "/pay",
        "team": "core",
        "host_name": "web-1",
        "otel_scope_name": "app.http",
    }
    assert first["fields"] == {"retries": 3, "cached": False, "ratio": 0.5, "tags": '["a","b"]'}
    assert first["trace_id"] == TRACE and first["span_id"] == SPAN
    assert second["level"] == "warn"
    assert second["message"] == '{"k":"v"}'
    assert second["labels"]["team"] == "payments"  # the record's own attribute wins
    assert second["trace_id"] is None
    assert abs((second["timestamp"] or 0) - (time.time() - 8)) < 5
    assert third["level"] == "fatal" and third["message"] == "bad\ufffdbyte"
    assert third["timestamp"] is None


async def test_a_resend_of_the_same_body_is_stored_once(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    raw = to_protobuf(request_json({"body": {"stringValue": "once"}}))
    for _ in range(2):
        response = await client.post("/v1/logs", content=raw, headers=PROTOBUF)
        assert response.status_code == 200
    assert len(await entries(bus)) == 1


async def test_long_messages_are_cut_and_many_attributes_overflow_into_fields(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    many = {f"k{i}": f"v{i}" for i in range(100)}
    body = request_json(
        {"body": {"stringValue": "x" * (MAX_MESSAGE_BYTES + 10)}, "attributes": attributes(**many)}
    )
    response = await client.post("/v1/logs", content=orjson.dumps(body), headers=JSON)
    assert response.status_code == 200, response.text
    [entry] = await entries(bus)
    assert len(entry["message"]) == MAX_MESSAGE_BYTES
    assert entry["fields"]["message_cut_bytes"] == 10
    assert len(entry["labels"]) == 64
    assert "k0" in entry["labels"]
    overflow = {k for k in entry["fields"] if k.startswith("k")}
    assert overflow and overflow.isdisjoint(entry["labels"])


async def test_attribute_keys_too_long_for_a_label_or_a_field_are_counted_not_refused(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    record = {
        "body": {"stringValue": "long keys"},
        "attributes": [
            {"key": "k" * 150, "value": {"stringValue": "v"}},
            {"key": "n" * 100 + ".x", "value": {"stringValue": "w"}},
        ],
    }
    response = await client.post(
        "/v1/logs", content=orjson.dumps(request_json(record)), headers=JSON
    )
    assert response.status_code == 200, response.text
    [entry] = await entries(bus)
    assert entry["labels"]["n" * 100 + "_x"] == "w"
    assert entry["fields"] == {"otel_dropped_attributes": 1}


@pytest.mark.parametrize(
    ("body", "headers", "status", "names"),
    [
        (b"{not json", JSON, 400, "body"),
        (b"\xff\x00garbage", PROTOBUF, 400, "body"),
        (b"plain", {**PROTOBUF, "Content-Encoding": "gzip"}, 400, "gzip"),
        (b"", {**PROTOBUF, "Content-Encoding": "br"}, 415, "Content-Encoding"),
        (
            orjson.dumps(request_json({"body": {"stringValue": "x"}, "traceId": "zz"})),
            JSON,
            400,
            "traceId",
        ),
    ],
)
async def test_bad_requests_are_refused_naming_the_problem(
    client: httpx.AsyncClient,
    bus: EventBus,
    body: bytes,
    headers: dict[str, str],
    status: int,
    names: str,
) -> None:
    response = await client.post("/v1/logs", content=body, headers=headers)
    assert response.status_code == status, response.text
    if headers["Content-Type"] == JSON["Content-Type"]:
        assert names in response.json()["message"]
    else:
        assert names in Status.FromString(response.content).message
    assert await entries(bus) == []


async def test_one_record_outside_the_time_window_refuses_the_request_naming_it(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    body = request_json(
        {"body": {"stringValue": "fine"}, "timeUnixNano": now_ns()},
        {"body": {"stringValue": "future"}, "timeUnixNano": now_ns(-3600)},
    )
    response = await client.post("/v1/logs", content=orjson.dumps(body), headers=JSON)
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert "resourceLogs[0].scopeLogs[0].logRecords[1].timeUnixNano" in message
    assert await entries(bus) == []


async def test_only_ingest_keys_may_export(gateway: Gateway, bus: EventBus) -> None:
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        raw = to_protobuf(request_json({"body": {"stringValue": "x"}}))
        anonymous = await http.post("/v1/logs", content=raw, headers=PROTOBUF)
        assert anonymous.status_code == 401
        viewer = await headers_for(gateway.app, http, "viewer")
        refused = await http.post("/v1/logs", content=raw, headers={**PROTOBUF, **viewer})
        assert refused.status_code == 403
        allowed = await http.post("/v1/logs", content=raw, headers={**PROTOBUF, **ADMIN})
        assert allowed.status_code == 200
    assert len(await entries(bus)) == 1
