"""What a log batch must look like, and the level names it may use; free of I/O.

A batch is validated whole before anything is published: the first problem is answered
with 4xx naming the entry and the field (``entries[3].level``), and nothing is stored.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from services.gateway.metrics.batch import MalformedBody, check_batch_size
from shared.errors import InvalidInput
from shared.events.logs import (
    LEVELS,
    MAX_BATCH_ENTRIES,
    MAX_FIELDS,
    MAX_FIELDS_BYTES,
    MAX_MESSAGE_BYTES,
    LogEntry,
)
from shared.events.metrics import MAX_FUTURE_S
from shared.labels import MAX_LABEL_VALUE_CHARS, MAX_LABELS, first_unprintable
from shared.settings import DEFAULT_LOGS_RETENTION_S

LOG_BATCH = TypeAdapter(list[LogEntry])

# what other systems call the levels (syslog, log4j, Python, Go, OpenTelemetry, .NET)
LEVEL_ALIASES: dict[str, str] = {
    **{name: name for name in LEVELS},
    "trc": "trace",
    "verbose": "trace",
    "finest": "trace",
    "dbg": "debug",
    "fine": "debug",
    "finer": "debug",
    "information": "info",
    "informational": "info",
    "inf": "info",
    "notice": "info",
    "warning": "warn",
    "wrn": "warn",
    "err": "error",
    "eror": "error",
    "severe": "error",
    "critical": "fatal",
    "crit": "fatal",
    "alert": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
    "panic": "fatal",
    "ftl": "fatal",
}


def normalise_level(value: str, field: str) -> str:
    canonical = LEVEL_ALIASES.get(value.strip().lower())
    if canonical is None:
        raise InvalidInput(
            f"{field}: {value[:40]!r} is not a level; use one of {', '.join(LEVELS)} "
            "(or warning, critical, err, information, ...)",
            field=field,
        )
    return canonical


def parse_log_batch(
    body: bytes, now: float | None = None, max_age_s: float = DEFAULT_LOGS_RETENTION_S
) -> list[LogEntry]:
    """One entry (an object) or a JSON array of them, validated whole or refused whole.

    A timestamp must lie between ``max_age_s`` (the longest log retention) before ``now``
    and ``MAX_FUTURE_S`` after it, as for samples.
    """
    check_batch_size(len(body))
    try:
        raw: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"body: not valid JSON: {exc}", field="body") from None
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise InvalidInput(
            "entries: body must be a log entry (an object) or a JSON array of them",
            field="entries",
        )
    if not raw:
        raise InvalidInput("entries: the batch is empty", field="entries")
    if len(raw) > MAX_BATCH_ENTRIES:
        raise InvalidInput(
            f"entries: {len(raw)} entries is over the limit of {MAX_BATCH_ENTRIES} per batch",
            field="entries",
        )
    for index, item in enumerate(raw):
        if isinstance(item, dict):
            _normalise(item, index)
    try:
        entries = LOG_BATCH.validate_python(raw)
    except ValidationError as exc:
        field, message = describe_error(exc.errors()[0])
        raise InvalidInput(f"{field}: {message}", field=field) from exc
    stamp_now = time.time() if now is None else now
    oldest, newest = stamp_now - max_age_s, stamp_now + MAX_FUTURE_S
    for index, entry in enumerate(entries):
        _check_entry(entry, index, oldest, newest, stamp_now, max_age_s)
    return entries


def _normalise(item: dict[str, Any], index: int) -> None:
    """Level names and hex ids into their canonical spelling, before validation."""
    level = item.get("level")
    if isinstance(level, str):
        item["level"] = normalise_level(level, f"entries[{index}].level")
    elif level is None and "level" in item:
        del item["level"]
    for key in ("trace_id", "span_id"):
        value = item.get(key)
        if isinstance(value, str):
            item[key] = value.lower()


def _check_entry(
    entry: LogEntry, index: int, oldest: float, newest: float, now: float, max_age_s: float
) -> None:
    size = len(entry["message"].encode())
    if size > MAX_MESSAGE_BYTES:
        field = f"entries[{index}].message"
        raise InvalidInput(
            f"{field}: {size} bytes is over the limit of {MAX_MESSAGE_BYTES} bytes", field=field
        )
    fields = entry["fields"]
    if fields and len(encoded := orjson.dumps(fields)) > MAX_FIELDS_BYTES:
        field = f"entries[{index}].fields"
        raise InvalidInput(
            f"{field}: {len(encoded)} bytes of JSON is over the limit of {MAX_FIELDS_BYTES}",
            field=field,
        )
    stamp = entry["timestamp"]
    if stamp is not None and not oldest <= stamp <= newest:
        field = f"entries[{index}].timestamp"
        problem = (
            f"is more than {MAX_FUTURE_S:g} s ahead of the server's clock ({now:.0f})"
            if stamp > newest
            else f"is older than the log retention, {max_age_s:g} s before the server's "
            f"clock ({now:.0f})"
        )
        raise InvalidInput(f"{field}: {stamp!r} {problem}", field=field)


def describe_error(error: Any) -> tuple[str, str]:
    loc: tuple[Any, ...] = tuple(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if not loc or not isinstance(loc[0], int):
        return "entries", message
    field = f"entries[{loc[0]}]"
    if len(loc) == 1:
        return field, "must be an object with at least a message"
    name = str(loc[1])
    field = f"{field}.{name}"
    kind = error["type"]
    received = error.get("input")
    if kind == "extra_forbidden":
        return field, (
            "unknown field; an entry has message, timestamp, level, service, labels, fields, "
            "trace_id and span_id"
        )
    if name == "message":
        if kind == "string_pattern_mismatch":
            return field, ("holds a control character other than tab, line feed or carriage return")
        if kind == "string_too_short":
            return field, "must not be empty"
        if kind == "string_too_long":
            return field, f"longer than the limit of {MAX_MESSAGE_BYTES} bytes"
    if name == "timestamp":
        return field, "must be a finite number of Unix seconds, or null"
    if name in ("trace_id", "span_id"):
        digits = 32 if name == "trace_id" else 16
        return field, f"must be {digits} hexadecimal digits"
    if name == "service" and kind == "string_pattern_mismatch" and isinstance(received, str):
        bad = first_unprintable(received)
        what = f"U+{ord(bad):04X}" if bad is not None else "a character"
        return field, f"must be printable text; {what} is a control or format character"
    if name == "service" and kind == "string_too_long":
        return field, f"longer than {MAX_LABEL_VALUE_CHARS} characters"
    if name == "labels" and len(loc) == 2 and kind == "too_long":
        return field, f"more than {MAX_LABELS} labels"
    if name == "labels" and len(loc) > 2:
        key = orjson.dumps(str(loc[2])).decode()
        if "[key]" in loc:
            return f"{field}[{key}]", f"label name: {message}"
        return f"{field}[{key}]", _label_value_problem(kind, received, message)
    if name == "fields" and len(loc) == 2 and kind == "too_long":
        return field, f"more than {MAX_FIELDS} fields"
    if name == "fields" and len(loc) > 2:
        key = orjson.dumps(str(loc[2])).decode()
        if "[key]" in loc:
            return f"{field}[{key}]", f"field name: {message}"
        return f"{field}[{key}]", (
            "a field value must be a string, a finite number, true, false or null (fields "
            "are flat: no objects or arrays)"
        )
    return field, message


def _label_value_problem(kind: str, received: Any, message: str) -> str:
    if kind == "string_too_long":
        return f"the value is longer than {MAX_LABEL_VALUE_CHARS} characters"
    if kind == "string_pattern_mismatch" and isinstance(received, str):
        bad = first_unprintable(received)
        what = f"U+{ord(bad):04X}" if bad is not None else "a character"
        return f"the value must be printable text; {what} is a control or format character"
    return message


def parse_levels(text: str | None) -> list[str]:
    """``error,warn`` (any alias) as canonical levels."""
    if not text:
        return []
    return sorted(
        {normalise_level(part, "level") for part in text.split(",") if part.strip()},
        key=LEVELS.index,
    )


def parse_names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]
