"""What a sample batch must look like and how a label filter is written; free of I/O."""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from shared.errors import InvalidInput, VigilError
from shared.events import MAX_BATCH_BYTES, MAX_BATCH_SAMPLES, MAX_FUTURE_S, Sample
from shared.events.metrics import MAX_METRIC_NAME_CHARS
from shared.labels import (
    LABEL_NAME_RULE,
    MAX_LABEL_NAME_CHARS,
    MAX_LABEL_VALUE_CHARS,
    MAX_LABELS,
    first_unprintable,
)
from shared.settings import DEFAULT_METRICS_RETENTION_S

SAMPLE_BATCH = TypeAdapter(list[Sample])


class MalformedBody(VigilError):
    """The body is not JSON at all: the client sent something other than what it meant."""

    kind = "malformed"
    http_status = 400


class PayloadTooLarge(VigilError):
    kind = "too_large"
    http_status = 413


def check_batch_size(size: int) -> None:
    if size > MAX_BATCH_BYTES:
        raise PayloadTooLarge(
            f"body: {size} bytes is over the {MAX_BATCH_BYTES} byte limit; split the batch",
            field="body",
        )


def parse_sample_batch(
    body: bytes, now: float | None = None, max_age_s: float = DEFAULT_METRICS_RETENTION_S
) -> list[Sample]:
    """Validate a whole batch or none of it; the error names the sample index and field.

    A timestamp must lie between ``max_age_s`` (the metrics retention) before ``now`` and
    ``MAX_FUTURE_S`` after it: older samples would be deleted at once, and later ones
    would outlive retention.

    orjson rejects NaN and Infinity literals outright; such a body is re-read with the
    lenient parser only to point at the offending sample instead of answering 400. What
    orjson refused is never accepted.
    """
    check_batch_size(len(body))
    strict_error: orjson.JSONDecodeError | None = None
    try:
        raw: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        strict_error = exc
        raw = _lenient_json(body, exc)
    if not isinstance(raw, list):
        raise InvalidInput("samples: body must be a JSON list of samples", field="samples")
    if len(raw) > MAX_BATCH_SAMPLES:
        raise InvalidInput(
            f"samples: {len(raw)} samples is over the limit of {MAX_BATCH_SAMPLES} per batch",
            field="samples",
        )
    if not raw:
        raise InvalidInput("samples: the batch is empty", field="samples")
    try:
        samples = SAMPLE_BATCH.validate_python(raw)
    except ValidationError as exc:
        field, message = _describe_sample_error(exc.errors()[0])
        raise InvalidInput(f"{field}: {message}", field=field) from exc
    if strict_error is not None:
        raise MalformedBody(f"body: not valid JSON: {strict_error}", field="body")
    check_timestamps(samples, time.time() if now is None else now, max_age_s)
    return samples


def check_timestamps(samples: list[Sample], now: float, max_age_s: float) -> None:
    """One comparison per sample; the error names the first one out of the window."""
    oldest, newest = now - max_age_s, now + MAX_FUTURE_S
    for index, sample in enumerate(samples):
        stamp = sample["timestamp"]
        if stamp is not None and not oldest <= stamp <= newest:
            problem = (
                f"is more than {MAX_FUTURE_S:g} s ahead of the server's clock ({now:.0f})"
                if stamp > newest
                else f"is older than the metrics retention, {max_age_s:g} s before the "
                f"server's clock ({now:.0f})"
            )
            raise InvalidInput(
                f"samples[{index}].timestamp: {stamp!r} {problem}",
                field=f"samples[{index}].timestamp",
            )


def _int_or_infinite(text: str) -> int | float:
    """Integers beyond float range become infinity, which validation then names."""
    return float(text) if len(text.lstrip("-")) > 300 else int(text)


def _lenient_json(body: bytes, strict_error: orjson.JSONDecodeError) -> Any:
    try:
        return json.loads(body, parse_int=_int_or_infinite)
    except (ValueError, RecursionError):
        raise MalformedBody(f"body: not valid JSON: {strict_error}", field="body") from None


def _describe_sample_error(error: Any) -> tuple[str, str]:
    loc: tuple[Any, ...] = tuple(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if not loc or not isinstance(loc[0], int):
        return "samples", message
    field = f"samples[{loc[0]}]"
    if len(loc) == 1:
        return field, "must be an object with name and value"
    name = str(loc[1])
    field = f"{field}.{name}"
    if name in ("value", "timestamp"):
        wanted = "a finite number" + (" or null" if name == "timestamp" else "")
        received = error.get("input")
        if isinstance(received, str | bool | list | dict):
            return field, f"must be {wanted}, not {type(received).__name__} {received!r:.40}"
        return field, f"must be {wanted} (no NaN or infinity)"
    if name == "labels" and len(loc) == 2 and error["type"] == "too_long":
        count = len(received) if isinstance(received := error.get("input"), dict) else "too many"
        return field, f"{count} labels is over the limit of {MAX_LABELS}"
    if name == "labels" and len(loc) > 2:
        key = json.dumps(str(loc[2]))
        if "[key]" in loc:
            return f"{field}[{key}]", f"label name: {_label_name_problem(error, message)}"
        return f"{field}[{key}]", _label_value_problem(error, message)
    if name == "name" and error["type"] in ("string_pattern_mismatch", "string_too_long"):
        return field, (
            "must match [a-zA-Z_:][a-zA-Z0-9_:.]* and have at most "
            f"{MAX_METRIC_NAME_CHARS} characters"
        )
    if error["type"] == "extra_forbidden":
        return field, "unknown field; a sample has name, value, timestamp and labels"
    return field, message


def _label_name_problem(error: Any, message: str) -> str:
    if error["type"] == "string_pattern_mismatch":
        return f"must match {LABEL_NAME_RULE}"
    if error["type"] == "string_too_long":
        return f"longer than {MAX_LABEL_NAME_CHARS} characters"
    return message


def _label_value_problem(error: Any, message: str) -> str:
    if error["type"] == "string_too_long":
        return f"the value is longer than {MAX_LABEL_VALUE_CHARS} characters"
    received = error.get("input")
    if error["type"] == "string_pattern_mismatch" and isinstance(received, str):
        bad = first_unprintable(received)
        what = f"U+{ord(bad):04X}" if bad is not None else "a character"
        return (
            f"the value must be printable text; {what} is a control or format character "
            "(line breaks, tabs, bidi overrides and zero-width characters are refused)"
        )
    return message


def parse_label_filter(text: str | None) -> dict[str, str]:
    """``k=v,k2=v2`` or a JSON object of strings, e.g. ``{"host": "web-1"}``."""
    if not text:
        return {}
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            parsed = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"labels: not a JSON object: {exc}", field="labels") from exc
        if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
        ):
            raise InvalidInput("labels: must map label names to strings", field="labels")
        return parsed
    labels: dict[str, str] = {}
    for pair in stripped.split(","):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(
                f"labels: {pair.strip()!r} is not name=value (write k=v,k2=v2)", field="labels"
            )
        labels[key.strip()] = value.strip()
    return labels
