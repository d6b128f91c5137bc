"""POST /api/v1/write: a Prometheus remote-write request is stored whole as one batch,
or refused with a 4xx that names the problem (Prometheus drops what it got 4xx for)."""

from __future__ import annotations

import logging
import math
import random
import struct
import time

import httpx
import pytest

from services.gateway.app import Gateway, build_gateway
from services.gateway.metrics import rwscan
from services.gateway.metrics.remote_write import MAX_DECODED_BYTES, decode_write_request
from shared import subjects
from shared.bus import EventBus
from shared.events import MAX_BATCH_BYTES, MAX_BATCH_SAMPLES, Sample, SampleBlock
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.conftest import detail
from tests.gateway.identities import ADMIN, headers_for
from tests.gateway.remote_write_bodies import (
    REMOTE_WRITE_HEADERS,
    field,
    snappy,
    varint,
    write_request,
)

URL = "/api/v1/write"
STALE_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]


async def stored(bus: EventBus) -> list[SampleBlock]:
    recorded = await bus.read_subject(subjects.samples("api"))
    return [r.event for r in recorded if isinstance(r.event, SampleBlock)]


def now_ms() -> int:
    return int(time.time() * 1000)


async def post(client: httpx.AsyncClient, body: bytes, **headers: str) -> httpx.Response:
    return await client.post(URL, content=body, headers={**REMOTE_WRITE_HEADERS, **headers})


async def test_a_write_request_is_stored_as_one_batch(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    ms = now_ms() - 5_000
    body = snappy(
        write_request(
            [
                ({"__name__": "http_requests_total", "job": "api", "code": "200"}, [(7.0, ms)]),
                (
                    {"__name__": "node_load1", "instance": "web-1:9100", "empty": ""},
                    [(0.5, ms), (math.nan, ms + 1), (STALE_NAN, ms + 2), (0.75, ms + 15_000)],
                ),
            ]
        )
    )
    response = await post(client, body)
    assert response.status_code == 204, response.text
    again = await post(client, body)  # Prometheus retrying after a lost answer
    assert again.status_code == 204
    [event] = await stored(bus)
    assert event.aggregate_id == "api"
    assert event.all_samples() == [
        Sample(
            name="http_requests_total",
            value=7.0,
            timestamp=ms / 1000,
            labels={"job": "api", "code": "200"},
        ),
        Sample(
            name="node_load1", value=0.5, timestamp=ms / 1000, labels={"instance": "web-1:9100"}
        ),
        Sample(
            name="node_load1",
            value=0.75,
            timestamp=(ms + 15_000) / 1000,
            labels={"instance": "web-1:9100"},
        ),
    ]


async def test_an_empty_write_request_is_204_and_stores_nothing(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    assert (await post(client, snappy(b""))).status_code == 204
    only_stale = write_request([({"__name__": "up"}, [(STALE_NAN, now_ms())])])
    assert (await post(client, snappy(only_stale))).status_code == 204
    assert await stored(bus) == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "body: empty"),
        (b"\x05not snappy at all", "not snappy block format"),
        (snappy(b"\x0a\x05\x0a\x03"), "not a protobuf WriteRequest"),
        (snappy(b"\x0f"), "wire type protobuf lacks"),
        (snappy(field(1, field(1, field(1, b"\xff\xfe")))), "label name or value is not UTF-8"),
    ],
)
async def test_an_undecodable_body_is_400(
    client: httpx.AsyncClient, bus: EventBus, body: bytes, says: str
) -> None:
    response = await post(client, body)
    assert response.status_code == 400, response.text
    assert says in detail(response)
    assert response.json()["field"] == "body"
    assert await stored(bus) == []


async def test_an_invalid_series_refuses_the_whole_request_and_is_named(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    ms = now_ms()
    good = ({"__name__": "up", "job": "a"}, [(1.0, ms)])
    too_many = {"__name__": "wide", **{f"l{i}": "v" for i in range(65)}}
    cases = [
        ([good, ({"job": "b"}, [(1.0, ms)])], "timeseries[1]", "no __name__ label"),
        (
            [good, ({"__name__": "up", "__meta": "x"}, [(1.0, ms)])],
            "timeseries[1]",
            "__ (reserved)",
        ),
        ([good, (too_many, [(1.0, ms)])], "timeseries[1].labels", "65 labels"),
        ([good, ({"__name__": "up"}, [(1.0, 1_000)])], "timeseries[1]", "older than"),
    ]
    for series, where, says in cases:
        response = await post(client, snappy(write_request(series)))
        assert response.status_code == 422, response.text
        assert response.json()["field"].startswith(where), (where, response.json())
        assert says in detail(response), response.json()
    assert await stored(bus) == []


async def test_limits_are_413(client: httpx.AsyncClient, bus: EventBus) -> None:
    ms = now_ms()
    many = write_request([({"__name__": "x"}, [(1.0, ms)] * (MAX_BATCH_SAMPLES + 1))])
    response = await post(client, snappy(many))
    assert response.status_code == 413
    assert "max_samples_per_send" in detail(response)
    bomb = varint(MAX_DECODED_BYTES + 1) + b"\x00"
    assert (await post(client, bomb)).status_code == 413
    big = b"\x00" * (MAX_BATCH_BYTES + 1)
    assert (await post(client, big)).status_code == 413
    assert await stored(bus) == []


async def test_headers_of_another_protocol_are_415(client: httpx.AsyncClient) -> None:
    body = snappy(b"")
    gzip = await post(client, body, **{"Content-Encoding": "gzip"})
    assert gzip.status_code == 415
    assert gzip.json()["field"] == "Content-Encoding"
    v2 = await post(client, body, **{"X-Prometheus-Remote-Write-Version": "2.0.0"})
    assert v2.status_code == 415
    json = await post(client, body, **{"Content-Type": "application/json"})
    assert json.status_code == 415


async def test_only_an_ingest_key_may_write(client: httpx.AsyncClient, gateway: Gateway) -> None:
    body = snappy(b"")
    wrong = await post(client, body, Authorization="Bearer not-a-key")
    assert wrong.status_code == 401
    viewer = await headers_for(gateway.app, client, "viewer")
    assert (await post(client, body, **viewer)).status_code == 403
    ingest = await headers_for(gateway.app, client, "ingest")
    assert (await post(client, body, **ingest)).status_code == 204


def test_the_reader_skips_fields_it_does_not_need() -> None:
    label = field(1, field(1, b"__name__") + field(2, b"up"))
    sample = field(2, b"\x09" + struct.pack("<d", 2.5) + b"\x10" + varint(-1))
    exemplar = field(3, b"\x15\x00\x00\x00\x00")  # fixed32 inside an unknown message
    metadata = field(3, field(4, b"help text"))
    series = decode_write_request(field(1, label + sample + exemplar) + metadata)
    assert series == [({"__name__": "up"}, [(2.5, -1)])]


async def test_remote_writes_count_against_the_ingest_rate_not_the_api_rate(
    gateway_settings: Settings, start_service: RuntimeFactory
) -> None:
    settings = gateway_settings.model_copy(update={"api_rate_per_s": 1.0, "api_burst": 1})
    gateway = build_gateway(settings)
    await start_service(gateway.runtime)
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost", headers=ADMIN
    ) as http:
        statuses = [(await post(http, snappy(b""))).status_code for _ in range(5)]
    assert statuses == [204] * 5


def test_any_cut_or_flipped_body_is_read_or_refused_never_crashes() -> None:
    from services.gateway.metrics.batch import MalformedBody

    valid = write_request(
        [
            ({"__name__": "up", "job": "api"}, [(1.0, 1_700_000_000_000), (0.0, -5)]),
            ({"__name__": "node_load1", "instance": "h:9100"}, [(0.25, 1_700_000_000_000)]),
        ]
    )
    rng = random.Random(7)
    bodies = [valid[:cut] for cut in range(len(valid))]
    for _ in range(2000):
        flipped = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        bodies.append(bytes(flipped))
    refused = 0
    for body in bodies:
        try:
            decode_write_request(body)
        except MalformedBody:
            refused += 1
    assert refused > len(valid) // 2


@pytest.mark.parametrize("compiled", [True, False])
async def test_a_gateway_without_the_compiled_reader_says_so_at_start(
    gateway_settings: Settings,
    start_service: RuntimeFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    compiled: bool,
) -> None:
    monkeypatch.setattr(rwscan, "COMPILED", compiled)
    with caplog.at_level(logging.WARNING, logger="services.gateway.app"):
        await start_service(build_gateway(gateway_settings).runtime)
    warned = any("pure Python" in r.getMessage() for r in caplog.records)
    assert warned is not compiled
