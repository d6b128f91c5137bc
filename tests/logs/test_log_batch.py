"""What a log batch may hold: levels normalised, every limit refused whole with 4xx
naming the entry and the field."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from services.gateway.logs.batch import parse_levels, parse_log_batch
from services.gateway.metrics.batch import MalformedBody, PayloadTooLarge
from shared.errors import InvalidInput, VigilError
from shared.events.logs import LEVELS
from shared.settings import LOG_LEVELS, Settings

NOW = 1_800_000_000.0


def parse(body: Any) -> list[Any]:
    return list(parse_log_batch(orjson.dumps(body), NOW))


def test_one_object_or_an_array_every_key_present_after_validation() -> None:
    [one] = parse({"message": "hello"})
    assert one == {
        "message": "hello",
        "timestamp": None,
        "level": "info",
        "service": "",
        "labels": {},
        "fields": {},
        "trace_id": None,
        "span_id": None,
    }
    many = parse(
        [
            {"message": "a\n\tat frame 1\r\n", "level": "WARNING", "service": "api"},
            {
                "message": "b",
                "timestamp": NOW - 5,
                "labels": {"host": "web-1"},
                "fields": {"ms": 12.5, "ok": True, "user": "ann", "n": 3, "none": None},
                "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736",
                "span_id": "00f067aa0ba902b7",
            },
        ]
    )
    assert many[0]["level"] == "warn" and many[0]["message"] == "a\n\tat frame 1\r\n"
    assert many[1]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert many[1]["fields"] == {"ms": 12.5, "ok": True, "user": "ann", "n": 3, "none": None}


@pytest.mark.parametrize(
    ("given", "level"),
    [
        ("warning", "warn"),
        ("Critical", "fatal"),
        ("err", "error"),
        ("information", "info"),
        ("DEBUG", "debug"),
        ("trace", "trace"),
        ("emerg", "fatal"),
        (" notice ", "info"),
    ],
)
def test_common_level_names_are_normalised(given: str, level: str) -> None:
    assert parse({"message": "x", "level": given})[0]["level"] == level


def test_the_levels_of_the_contract_and_of_the_settings_are_the_same() -> None:
    assert LEVELS == LOG_LEVELS
    assert parse_levels("error,WARNING,err") == ["warn", "error"]


LONG = "é" * 16_385  # 32,770 bytes in 16,385 characters


# (case, body, exception, field, what the message says)
BAD: list[tuple[str, Any, type[VigilError], str, str]] = [
    ("not JSON", b"{oops", MalformedBody, "body", "not valid JSON"),
    ("a number", 3, InvalidInput, "entries", "must be a log entry"),
    ("empty", [], InvalidInput, "entries", "the batch is empty"),
    ("too many", [{"message": "x"}] * 10_001, InvalidInput, "entries", "10001 entries"),
    ("not an object", [{"message": "x"}, 3], InvalidInput, "entries[1]", "must be an object"),
    ("no message", [{"level": "info"}], InvalidInput, "entries[0].message", "Field required"),
    ("empty message", [{"message": ""}], InvalidInput, "entries[0].message", "must not be empty"),
    ("NUL", [{"message": "a\x00b"}], InvalidInput, "entries[0].message", "control character"),
    ("escape", [{"message": "\x1b[31mred"}], InvalidInput, "entries[0].message", "control"),
    ("32 KiB", [{"message": LONG}], InvalidInput, "entries[0].message", "32770 bytes"),
    ("level", [{"message": "x", "level": "loud"}], InvalidInput, "entries[0].level", "'loud'"),
    ("level type", [{"message": "x", "level": 3}], InvalidInput, "entries[0].level", ""),
    (
        "service",
        [{"message": "x", "service": "a\nb"}],
        InvalidInput,
        "entries[0].service",
        "U+000A",
    ),
    (
        "label name",
        [{"message": "x", "labels": {"__x": "1"}}],
        InvalidInput,
        'entries[0].labels["__x"]',
        "label name",
    ),
    (
        "label value",
        [{"message": "x", "labels": {"host": "a\tb"}}],
        InvalidInput,
        'entries[0].labels["host"]',
        "printable",
    ),
    (
        "nested field",
        [{"message": "x", "fields": {"user": {"id": 1}}}],
        InvalidInput,
        'entries[0].fields["user"]',
        "flat",
    ),
    (
        "65 fields",
        [{"message": "x", "fields": {f"f{n}": n for n in range(65)}}],
        InvalidInput,
        "entries[0].fields",
        "more than 64",
    ),
    (
        "8 KiB fields",
        [{"message": "x", "fields": {"blob": "y" * 9000}}],
        InvalidInput,
        "entries[0].fields",
        "over the limit of 8192",
    ),
    ("trace id", [{"message": "x", "trace_id": "abc"}], InvalidInput, "entries[0].trace_id", "32"),
    ("span id", [{"message": "x", "span_id": "z" * 16}], InvalidInput, "entries[0].span_id", "16"),
    ("extra", [{"message": "x", "msg": "y"}], InvalidInput, "entries[0].msg", "unknown field"),
    (
        "future",
        [{"message": "x"}, {"message": "y", "timestamp": NOW + 301}],
        InvalidInput,
        "entries[1].timestamp",
        "ahead",
    ),
    (
        "past retention",
        [{"message": "x", "timestamp": NOW - 8 * 86_400}],
        InvalidInput,
        "entries[0].timestamp",
        "older than the log retention",
    ),
    ("NaN stamp", b'[{"message": "x", "timestamp": NaN}]', MalformedBody, "body", "JSON"),
]


@pytest.mark.parametrize(("case", "body", "error", "field", "says"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_naming_the_field(
    case: str, body: Any, error: type[VigilError], field: str, says: str
) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(error) as refused:
        parse_log_batch(raw, NOW)
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    assert says in str(refused.value)
    assert refused.value.http_status in (400, 422)


def test_a_body_over_five_megabytes_is_413() -> None:
    body = orjson.dumps([{"message": "x" * 30_000}] * 180)
    with pytest.raises(PayloadTooLarge) as refused:
        parse_log_batch(body, NOW)
    assert refused.value.http_status == 413
    assert refused.value.field == "body"


def test_the_window_follows_the_longest_level_retention(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_LOGS_RETENTION_BY_LEVEL", "debug=86400,error=2592000")
    settings = Settings()
    assert settings.longest_log_retention_s == 2_592_000
    old = orjson.dumps([{"message": "x", "timestamp": NOW - 20 * 86_400}])
    assert parse_log_batch(old, NOW, settings.longest_log_retention_s)[0]["timestamp"]


@pytest.mark.parametrize(
    ("value", "says"),
    [("debug", "not level=seconds"), ("loud=5", "not a level"), ("info=-1", "positive")],
)
def test_a_bad_level_retention_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    monkeypatch.setenv("VIGIL_LOGS_RETENTION_BY_LEVEL", value)
    with pytest.raises(ValueError, match=says):
        Settings()


def test_a_timestamp_is_taken_as_given_and_absent_means_received() -> None:
    now = time.time()
    [given, absent] = parse_log_batch(
        orjson.dumps([{"message": "a", "timestamp": now - 1.25}, {"message": "b"}]), now
    )
    assert given["timestamp"] == now - 1.25
    assert absent["timestamp"] is None
