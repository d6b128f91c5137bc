"""Pure rules of the gateway: batch validation, label filters, service liveness."""

from __future__ import annotations

import json

import orjson
import pytest

from services.gateway.health.liveness import ServiceLiveness, bounded_report
from services.gateway.metrics.batch import (
    MalformedBody,
    PayloadTooLarge,
    parse_label_filter,
    parse_sample_batch,
)
from shared.errors import InvalidInput
from shared.events import MAX_BATCH_BYTES, Sample
from shared.labels import MAX_LABEL_VALUE_CHARS, MAX_LABELS

NOW = 1_800_000_000.0
DAY = 86_400.0


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
        (b'[{"name": "9cpu", "value": 1}]', "samples[0].name: must match [a-zA-Z_:]"),
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


def labelled(labels: dict[str, str], at: int = 3) -> bytes:
    """A batch whose sample ``at`` carries ``labels``; the others are plain."""
    samples: list[dict[str, object]] = [{"name": "cpu", "value": 1}] * 5
    samples[at] = {"name": "cpu", "value": 1, "labels": labels}
    return orjson.dumps(samples)


def test_a_sample_may_carry_up_to_the_label_limit() -> None:
    labels = {f"l{n}": "v" for n in range(MAX_LABELS)}
    assert parse_sample_batch(labelled(labels))[3]["labels"] == labels


def test_one_label_over_the_limit_is_refused_with_the_count() -> None:
    body = labelled({f"l{n}": "v" for n in range(MAX_LABELS + 1)})
    with pytest.raises(InvalidInput) as caught:
        parse_sample_batch(body)
    assert caught.value.message == "samples[3].labels: 65 labels is over the limit of 64"
    assert caught.value.field == "samples[3].labels"


def test_a_sample_with_hundreds_of_thousands_of_labels_is_refused() -> None:
    body = labelled({f"label_{n}": "v" for n in range(200_000)}, at=0)
    with pytest.raises(InvalidInput, match=r"samples\[0\].labels: 200000 labels is over"):
        parse_sample_batch(body)


@pytest.mark.parametrize("name", ["host", "_", "_x", "a_9", "HOST_name", "x" * 128])
def test_label_names_as_prometheus_allows_them_are_accepted(name: str) -> None:
    assert parse_sample_batch(labelled({name: "v"}))[3]["labels"] == {name: "v"}


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("__name__", "must not start with __"),
        ("__x", "must not start with __"),
        ("a-b", "must match [a-zA-Z_][a-zA-Z0-9_]*"),
        ("9a", "must match [a-zA-Z_][a-zA-Z0-9_]*"),
        ("host name", "must match"),
        ("ü", "must match"),
        ("x" * 129, "longer than 128 characters"),
    ],
)
def test_bad_label_names_are_refused_by_name(name: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_sample_batch(labelled({name: "v"}))
    message = caught.value.message
    assert message.startswith(f"samples[3].labels[{json.dumps(name)}]: label name: ")
    assert problem in message


@pytest.mark.parametrize("value", ["", "web-1", "/a b/c?d=e", "Zürich 東京 🙂", "x" * 512])
def test_printable_label_values_are_accepted(value: str) -> None:
    assert parse_sample_batch(labelled({"v": value}))[3]["labels"] == {"v": value}


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("a\nb", "U+000A"),
        ("tab\there", "U+0009"),
        ("\x00", "U+0000"),
        ("del\x7f", "U+007F"),
        ("c1\x85", "U+0085"),
        ("evil\u202egnp.exe", "U+202E"),  # right-to-left override
        ("rlm\u200f", "U+200F"),
        ("zero\u200bwidth", "U+200B"),
        ("\ufeffbom", "U+FEFF"),
        ("line\u2028sep", "U+2028"),
    ],
)
def test_control_and_format_characters_in_values_are_refused(value: str, named: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_sample_batch(labelled({"path": value}))
    assert caught.value.field == 'samples[3].labels["path"]'
    assert f"must be printable text; {named} is a control or format character" in (
        caught.value.message
    )


def test_a_label_value_over_the_length_limit_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_sample_batch(labelled({"path": "x" * (MAX_LABEL_VALUE_CHARS + 1)}))
    assert caught.value.message == (
        'samples[3].labels["path"]: the value is longer than 512 characters'
    )


def test_an_overlong_metric_name_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"samples\[0\].name: must match .* at most 200"):
        parse_sample_batch(orjson.dumps([{"name": "m" * 201, "value": 1}]))


def stamped(stamp: float, at: int = 2) -> bytes:
    samples: list[dict[str, object]] = [{"name": "cpu", "value": 1, "timestamp": NOW}] * 4
    samples[at] = {"name": "cpu", "value": 1, "timestamp": stamp}
    return orjson.dumps(samples)


@pytest.mark.parametrize(
    "stamp", [NOW, NOW + 300, NOW - 7 * DAY, NOW - 400, NOW + 299.5, NOW - 7 * DAY + 1]
)
def test_timestamps_within_the_window_are_accepted(stamp: float) -> None:
    assert parse_sample_batch(stamped(stamp), NOW, 7 * DAY)[2]["timestamp"] == stamp


@pytest.mark.parametrize(
    ("stamp", "where"),
    [
        (-1e18, "older than the metrics retention, 604800 s before the server's clock"),
        (1e18, "more than 300 s ahead of the server's clock (1800000000)"),
        (NOW + 10 * 365 * DAY, "more than 300 s ahead"),
        (NOW + 301, "more than 300 s ahead"),
        (NOW - 7 * DAY - 1, "older than the metrics retention"),
        (0, "older than the metrics retention"),
    ],
)
def test_timestamps_outside_the_window_are_refused(stamp: float, where: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_sample_batch(stamped(stamp), NOW, 7 * DAY)
    assert caught.value.field == "samples[2].timestamp"
    assert caught.value.message.startswith(f"samples[2].timestamp: {float(stamp)!r} is {where}")


def test_the_oldest_timestamp_allowed_follows_the_retention() -> None:
    assert parse_sample_batch(stamped(NOW - 20 * DAY), NOW, 30 * DAY)
    with pytest.raises(InvalidInput, match="older than the metrics retention, 86400 s before"):
        parse_sample_batch(stamped(NOW - 2 * DAY), NOW, DAY)


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


def test_a_heartbeat_report_keeps_only_bounded_known_shapes() -> None:
    hostile = {
        "faults": {f"f{i}": "x" * 10_000 for i in range(1000)},
        "disk": {"path": "/d", "free_bytes": "lots", "total_bytes": 1, "writable": True},
        "watchdog_evaluated": "yesterday",
        "watchdog_delivered": 12.5,
        "anything": ["else"] * 1000,
    }
    report = bounded_report(hostile)
    assert len(report["faults"]) == 32
    assert all(len(reason) == 300 for reason in report["faults"].values())
    assert report.keys() == {"faults", "watchdog_delivered"}  # the odd disk is dropped
    good_disk = {"path": "/d", "free_bytes": 5, "total_bytes": 10, "writable": True}
    assert bounded_report({"disk": good_disk})["disk"] == good_disk


def test_made_up_service_names_cannot_grow_health_without_end() -> None:
    liveness = ServiceLiveness(interval_s=2.0)
    for n in range(1000):
        liveness.record({"service": f"fake-{n}"}, seen_at=1.0)
    assert liveness.record({"service": "alerts"}, seen_at=1.0) is not None
    assert len(liveness.status(now=1.0)) == 6 + 32
