"""Pure rules of the gateway: batch validation, label filters, service liveness."""

from __future__ import annotations

import pytest

from services.gateway.domain import (
    MalformedBody,
    PayloadTooLarge,
    ServiceLiveness,
    parse_label_filter,
    parse_sample_batch,
)
from shared.errors import InvalidInput
from shared.events import MAX_BATCH_BYTES, Sample


def test_a_valid_batch_becomes_samples() -> None:
    body = b'[{"name": "cpu", "value": 1.5, "labels": {"host": "web-1"}},{"name": "m", "value": 3}]'
    assert parse_sample_batch(body) == [
        Sample(name="cpu", value=1.5, timestamp=None, labels={"host": "web-1"}),
        Sample(name="m", value=3.0, timestamp=None, labels={}),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'[{"name": "cpu", "value": NaN}]', "samples[0].value: must be a finite number"),
        (b'[{"name": "cpu", "value": 1}, {"name": "cpu", "value": -Infinity}]', "samples[1].value"),
        (b'[{"name": "cpu", "value": 1e999}]', "samples[0].value: must be a finite number"),
        (b'[{"name": "cpu", "value": 1%s}]' % (b"0" * 400), "samples[0].value: must be a finite"),
        (b'[{"name": "cpu", "value": 1, "timestamp": Infinity}]', "samples[0].timestamp"),
        (b'[{"name": "cpu", "value": true}]', "samples[0].value: must be a finite number"),
        (b'[{"name": "cpu", "value": "7"}]', "samples[0].value: must be a finite number"),
        (b'[{"value": 1}]', "samples[0].name: Field required"),
        (b'[{"name": "cpu"}]', "samples[0].value"),
        (b'[{"name": "9cpu", "value": 1}]', "samples[0].name: String should match pattern"),
        (b'[{"name": "cpu", "value": 1, "labels": ["a"]}]', "samples[0].labels: "),
        (b'[{"name": "cpu", "value": 1, "labels": {"host": 1}}]', 'samples[0].labels["host"]'),
        (b'[{"name": "cpu", "value": 1, "labels": {"": "x"}}]', 'labels[""]: label name'),
        (b'[{"name": "cpu", "value": 1, "unit": "s"}]', "samples[0].unit: unknown field"),
        (b'[{"name": "cpu", "value": 1, "labels": {"a": "\\ud800"}}]', 'samples[0].labels["a"]'),
        (b"[7]", "samples[0]: must be an object"),
        (b'{"name": "cpu", "value": 1}', "samples: body must be a JSON list"),
        (b"[]", "samples: the batch is empty"),
    ],
)
def test_an_invalid_batch_names_the_sample_and_field(body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_sample_batch(body)
    assert message in caught.value.message


def test_too_many_samples_are_refused_whole() -> None:
    body = b"[" + b",".join([b'{"name":"x","value":1}'] * 10_001) + b"]"
    with pytest.raises(InvalidInput, match="10001 samples is over the limit of 10000"):
        parse_sample_batch(body)


def test_a_body_over_the_byte_limit_is_too_large() -> None:
    with pytest.raises(PayloadTooLarge):
        parse_sample_batch(b"[" + b" " * MAX_BATCH_BYTES + b"]")


@pytest.mark.parametrize("body", [b"", b"{nope", b"[1,", b"\xff\xfe"])
def test_malformed_json_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(MalformedBody) as caught:
        parse_sample_batch(body)
    assert caught.value.http_status == 400
    assert caught.value.message.startswith("body: not valid JSON")


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        (None, {}),
        ("", {}),
        ("host=web-1", {"host": "web-1"}),
        ("host=web-1, region = eu", {"host": "web-1", "region": "eu"}),
        ('{"host": "web-1", "path": "a=b,c"}', {"host": "web-1", "path": "a=b,c"}),
    ],
)
def test_label_filters_are_pairs_or_a_json_object(text: str | None, labels: dict[str, str]) -> None:
    assert parse_label_filter(text) == labels


@pytest.mark.parametrize("text", ["host", "=web", '{"host": 1}', "{broken"])
def test_bad_label_filters_name_the_labels_field(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_label_filter(text)
    assert caught.value.message.startswith("labels: ")


def test_a_service_is_up_until_three_beats_are_missed() -> None:
    liveness = ServiceLiveness(interval_s=2.0)
    liveness.record(
        {"service": "alerts", "host": "box", "pid": 41, "time": 1000.0, "started_at": 940.0},
        seen_at=1000.0,
    )
    by_name = {s.service: s for s in liveness.status(now=1006.0)}
    assert by_name["alerts"].up is True
    assert by_name["alerts"].pid == 41
    assert by_name["alerts"].host == "box"
    assert by_name["alerts"].uptime_s == pytest.approx(66.0)
    assert by_name["metrics"].up is False
    assert by_name["metrics"].last_seen is None
    later = {s.service: s for s in liveness.status(now=1006.5)}
    assert later["alerts"].up is False
    assert later["alerts"].last_seen == 1000.0


def test_every_expected_service_is_listed_and_unknown_ones_too() -> None:
    liveness = ServiceLiveness(interval_s=1.0)
    liveness.record({"service": "agent"}, seen_at=5.0)
    assert liveness.record({"pid": 3}, seen_at=5.0) is None
    names = [s.service for s in liveness.status(now=5.0)]
    assert names == ["gateway", "metrics", "alerts", "incidents", "synthetic", "notifier", "agent"]
