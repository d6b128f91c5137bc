"""POST /api/monitoring/metrics: a batch is stored whole, once, or refused with the field named."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import orjson

from shared import subjects
from shared.bus import EventBus
from shared.events import MAX_BATCH_BYTES, Sample, SamplesIngested
from tests.gateway.conftest import detail

JSON = {"Content-Type": "application/json"}
URL = "/api/monitoring/metrics"


async def stored_batches(bus: EventBus) -> list[SamplesIngested]:
    recorded = await bus.read_subject(subjects.samples("api"))
    return [r.event for r in recorded if isinstance(r.event, SamplesIngested)]


async def test_a_batch_is_stored_as_one_event(client: httpx.AsyncClient, bus: EventBus) -> None:
    stamp = round(time.time()) - 60.5
    batch = [
        {"name": "system_cpu_percent", "value": 93.5, "labels": {"host": "web-1"}},
        {"name": "system_cpu_percent", "value": 12, "timestamp": stamp},
    ]
    response = await client.post(URL, content=orjson.dumps(batch), headers=JSON)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2
    assert body["seq"] == 1
    [event] = await stored_batches(bus)
    assert event.id == body["batch_id"]
    assert event.aggregate_id == "api"
    assert event.received_at > 1_700_000_000
    assert event.samples == [
        Sample(name="system_cpu_percent", value=93.5, timestamp=None, labels={"host": "web-1"}),
        Sample(name="system_cpu_percent", value=12.0, timestamp=stamp, labels={}),
    ]


async def test_a_retried_post_with_the_same_idempotency_key_is_stored_once(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    content = orjson.dumps([{"name": "app_error_rate_percent", "value": 2.5}])
    headers = {"Idempotency-Key": "batch-7f3a"}
    first = await client.post(URL, content=content, headers={**JSON, **headers})
    second = await client.post(URL, content=content, headers={**JSON, **headers})
    other = await client.post(URL, content=content, headers=JSON)
    assert first.status_code == second.status_code == other.status_code == 202
    assert first.json() == second.json() == {"accepted": 1, "batch_id": "batch-7f3a", "seq": 1}
    assert other.json()["seq"] == 2
    info = await bus.js.stream_info("METRICS")
    assert info.state.messages == 2


NAN_AT_3 = (
    b'[{"name": "cpu", "value": 1}, {"name": "cpu", "value": 2}, {"name": "cpu", "value": 3},'
    b' {"name": "cpu", "value": NaN}]'
)
TOO_MANY = b"[" + b",".join([b'{"name":"x","value":1}'] * 10_001) + b"]"
TEN_YEARS_AHEAD = time.time() + 10 * 365 * 86_400


def stamped(stamp: float) -> bytes:
    return orjson.dumps(
        [{"name": "cpu", "value": 1}, {"name": "cpu", "value": 2, "timestamp": stamp}]
    )


def labelled(labels: dict[str, str]) -> bytes:
    return orjson.dumps([{"name": "cpu", "value": 1, "labels": labels}])


# (case, body, status, what the detail must say)
BAD_BATCHES = [
    ("malformed", b"{not json", 400, "body: not valid JSON"),
    ("empty body", b"", 400, "body: not valid JSON"),
    ("object", b'{"name": "cpu", "value": 1}', 422, "samples: body must be a JSON list"),
    ("empty list", b"[]", 422, "samples: the batch is empty"),
    ("not an object", b"[3]", 422, "samples[0]: must be an object"),
    ("no name", b'[{"value": 1}]', 422, "samples[0].name: Field required"),
    ("no value", b'[{"name": "cpu"}]', 422, "samples[0].value: must be a finite number"),
    (
        "string value",
        b'[{"name": "cpu", "value": 1}, {"name": "cpu", "value": "1"}]',
        422,
        "samples[1].value: must be a finite number",
    ),
    ("NaN", NAN_AT_3, 422, "samples[3].value: must be a finite number"),
    ("Infinity", b'[{"name": "cpu", "value": Infinity}]', 422, "samples[0].value"),
    ("overflow", b'[{"name": "cpu", "value": -1e400}]', 422, "samples[0].value"),
    ("bool", b'[{"name": "cpu", "value": false}]', 422, "samples[0].value"),
    ("timestamp", b'[{"name": "cpu", "value": 1, "timestamp": "now"}]', 422, "[0].timestamp"),
    ("labels", b'[{"name": "cpu", "value": 1, "labels": "host=a"}]', 422, "samples[0].labels"),
    (
        "label value",
        b'[{"name": "cpu", "value": 1, "labels": {"host": null}}]',
        422,
        'samples[0].labels["host"]',
    ),
    ("metric name", b'[{"name": "cpu value", "value": 1}]', 422, "samples[0].name"),
    ("extra field", b'[{"name": "cpu", "value": 1, "x": 1}]', 422, "samples[0].x"),
    (
        "far past",
        stamped(-1e18),
        422,
        "samples[1].timestamp: -1e+18 is older than the metrics retention",
    ),
    ("far future", stamped(1e18), 422, "samples[1].timestamp: 1e+18 is more than 300 s ahead"),
    ("ten years ahead", stamped(TEN_YEARS_AHEAD), 422, "samples[1].timestamp: "),
    ("before retention", stamped(time.time() - 16 * 86_400), 422, "1.296e+06 s before the server"),
    (
        "too many labels",
        labelled({f"l{n}": "v" for n in range(300_000)}),
        422,
        "samples[0].labels: 300000 labels is over the limit of 64",
    ),
    ("reserved label", labelled({"__name__": "x"}), 422, 'labels["__name__"]: label name: '),
    ("bidi override", labelled({"file": "txt.\u202eexe"}), 422, "U+202E is a control"),
    ("too many", TOO_MANY, 422, "samples: 10001 samples is over the limit of 10000"),
    ("too large", b"[" + b" " * MAX_BATCH_BYTES + b"]", 413, "body: "),
]


async def test_every_bad_batch_is_refused_with_the_field_named_and_nothing_stored(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    """One gateway for all cases: starting one per case would dominate the run time."""
    for case, content, status, message in BAD_BATCHES:
        response = await client.post(URL, content=content, headers=JSON)
        assert (case, response.status_code) == (case, status)
        assert message in detail(response), case
    info = await bus.js.stream_info("METRICS")
    assert info.state.messages == 0


async def test_an_oversized_body_without_content_length_is_refused(
    client: httpx.AsyncClient, bus: EventBus
) -> None:
    async def huge() -> AsyncIterator[bytes]:
        yield b"[" + b" " * (MAX_BATCH_BYTES // 2)
        yield b" " * MAX_BATCH_BYTES

    response = await client.post(URL, content=huge(), headers=JSON)
    assert response.status_code == 413
    assert f"over the {MAX_BATCH_BYTES} byte limit" in detail(response)
    assert (await bus.js.stream_info("METRICS")).state.messages == 0


async def test_an_empty_idempotency_key_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL, content=b'[{"name": "cpu", "value": 1}]', headers={**JSON, "Idempotency-Key": ""}
    )
    assert response.status_code == 422
    assert detail(response).startswith("idempotency-key: ")
