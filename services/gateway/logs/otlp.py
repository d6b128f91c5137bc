"""OTLP/HTTP log bodies to Vigil log entries; free of I/O.

Mapped as OpenTelemetry's log data model says:

- body → ``message`` (a string as it is; any other value as its attribute text, maps
  and arrays as JSON); a record without a body is stamped with its ``event_name``, and
  one with neither is counted in ``partial_success`` and not stored;
- ``severity_number`` → level by its range (1-4 trace … 21-24 fatal), or, when
  unspecified, ``severity_text`` by the same aliases as the JSON API, else ``info``;
- resource ``service.name`` → ``service``;
- string attributes of the record, its scope and its resource → labels (the most
  specific wins a name; ``http.route`` → ``http_route``), plus the scope's name as
  ``otel_scope_name``; numbers, booleans, bytes, arrays and maps, and whatever does not
  fit the label limits, → ``fields`` under the attribute's key (what does not fit the
  field limits is counted in the ``otel_dropped_attributes`` field);
- ``trace_id``/``span_id`` → hex (all-zero ids mean none);
- ``time_unix_nano``, else ``observed_time_unix_nano``, else when received → timestamp.

Messages are made storable rather than refused: control characters other than tab and
line breaks become U+FFFD, and a message over the limit is cut (``message_cut_bytes``
says how much went). A timestamp outside the accepted window refuses the whole request,
naming the record, as for samples.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from pydantic import ValidationError

from services.gateway.logs.batch import LEVEL_ALIASES, LOG_BATCH, describe_error
from services.gateway.metrics.batch import MalformedBody, PayloadTooLarge
from services.gateway.metrics.otlp import JSON, gunzip
from services.gateway.metrics.otlp_names import attribute_text, label_name
from shared.errors import InvalidInput
from shared.events import LogEntry
from shared.events.logs import (
    MAX_BATCH_ENTRIES,
    MAX_FIELD_NAME_CHARS,
    MAX_FIELDS,
    MAX_FIELDS_BYTES,
    MAX_MESSAGE_BYTES,
)
from shared.events.metrics import MAX_FUTURE_S
from shared.labels import (
    MAX_LABEL_NAME_CHARS,
    MAX_LABEL_VALUE_CHARS,
    MAX_LABELS,
    first_unprintable,
)

# severity_number ranges of the log data model, four numbers a level
SEVERITY_LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
NO_BODY = "without a body or an event name"
DROPPED_FIELD = "otel_dropped_attributes"
CUT_FIELD = "message_cut_bytes"
SCOPE_LABEL = "otel_scope_name"

_NOT_IN_MESSAGE = re.compile("[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]")


def level_of(severity_number: int, severity_text: str) -> str:
    if 1 <= severity_number <= 24:
        return SEVERITY_LEVELS[(severity_number - 1) // 4]
    return LEVEL_ALIASES.get(severity_text.strip().lower(), "info")


def message_of(text: str) -> tuple[str, int]:
    """``text`` storable as a message, and how many bytes were cut from its end."""
    text = _NOT_IN_MESSAGE.sub("\ufffd", text)
    encoded = text.encode()
    if len(encoded) <= MAX_MESSAGE_BYTES:
        return text, 0
    kept = encoded[:MAX_MESSAGE_BYTES].decode(errors="ignore")
    return kept, len(encoded) - len(kept.encode())


def field_value(value: AnyValue) -> Any:
    """A field keeps numbers and booleans as they are; the rest as its attribute text."""
    which = value.WhichOneof("value")
    if which == "bool_value":
        return value.bool_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        number = value.double_value
        return number if number == number and abs(number) != float("inf") else str(number)
    return attribute_text(value)


def _hex_id(raw: bytes, size: int) -> str | None:
    if len(raw) != size or not any(raw):
        return None
    return raw.hex()


def _ids_to_base64(node: Any) -> Any:
    """OTLP JSON writes trace and span ids in hex where protobuf JSON reads base64."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("traceId", "spanId", "trace_id", "span_id") and isinstance(value, str):
                try:
                    value = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise MalformedBody(
                        f"body: {key} {value[:40]!r} is not hexadecimal", field=f"body.{key}"
                    ) from None
            out[key] = _ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [_ids_to_base64(v) for v in node]
    return node


def decode_request(body: bytes, media_type: str) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    if media_type == JSON:
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedBody(f"body: not valid JSON: {exc}", field="body") from None
        if not isinstance(raw, dict):
            raise MalformedBody("body: must be a JSON object (resourceLogs)", field="body")
        try:
            json_format.ParseDict(_ids_to_base64(raw), request, ignore_unknown_fields=True)
        except (json_format.ParseError, RecursionError, ValueError, binascii.Error) as exc:
            raise MalformedBody(
                f"body: not an OTLP JSON ExportLogsServiceRequest: {exc}", field="body"
            ) from None
        return request
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise MalformedBody(
            f"body: not a protobuf ExportLogsServiceRequest: {exc}", field="body"
        ) from None
    return request


@dataclass
class _Attributes:
    """Attributes sorted into labels and fields, the most specific source first."""

    labels: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    dropped: int = 0

    def add(self, attributes: Any) -> None:
        for kv in attributes:
            value = kv.value
            if value.WhichOneof("value") == "string_value":
                text = value.string_value
                name = label_name(kv.key)
                if name in self.labels or not name.strip("_"):
                    continue
                if (
                    len(self.labels) < MAX_LABELS
                    and text
                    and len(text) <= MAX_LABEL_VALUE_CHARS
                    and first_unprintable(text) is None
                    and len(name) <= MAX_LABEL_NAME_CHARS
                    and not name.startswith("__")
                ):
                    self.labels[name] = text
                    continue
            self.add_field(kv.key, field_value(value))

    def add_field(self, key: str, value: Any) -> None:
        if key in self.fields:
            return
        if len(self.fields) >= MAX_FIELDS - 2 or not 1 <= len(key) <= MAX_FIELD_NAME_CHARS:
            self.dropped += 1
            return
        self.fields[key] = value
        if len(orjson.dumps(self.fields)) > MAX_FIELDS_BYTES - 64:
            del self.fields[key]
            self.dropped += 1


@dataclass
class _Mapped:
    entries: list[dict[str, Any]] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)


def _record(
    out: _Mapped, record: Any, path: str, service: str, scope: str, layers: list[Any]
) -> None:
    if record.HasField("body") and record.body.WhichOneof("value") is not None:
        body = record.body
        text = body.string_value if body.WhichOneof("value") == "string_value" else ""
        text = text or attribute_text(body)
    else:
        text = getattr(record, "event_name", "")
    if not text.strip():
        out.rejected[NO_BODY] += 1
        return
    message, cut = message_of(text)
    attributes = _Attributes()
    for layer in layers:
        attributes.add(layer)
    if scope and SCOPE_LABEL not in attributes.labels and len(attributes.labels) < MAX_LABELS:
        attributes.labels[SCOPE_LABEL] = scope[:MAX_LABEL_VALUE_CHARS]
    dropped = attributes.dropped + record.dropped_attributes_count
    if cut:
        attributes.fields[CUT_FIELD] = cut
    if dropped:
        attributes.fields[DROPPED_FIELD] = dropped
    nanos = record.time_unix_nano or record.observed_time_unix_nano
    out.entries.append(
        {
            "message": message,
            "timestamp": nanos / 1e9 if nanos else None,
            "level": level_of(record.severity_number, record.severity_text),
            "service": service,
            "labels": attributes.labels,
            "fields": attributes.fields,
            "trace_id": _hex_id(record.trace_id, 16),
            "span_id": _hex_id(record.span_id, 8),
        }
    )
    out.origins.append(path)
    if len(out.entries) > MAX_BATCH_ENTRIES:
        raise PayloadTooLarge(
            f"body: more than {MAX_BATCH_ENTRIES} log records in one request; export "
            "smaller batches",
            field="body",
        )


def _service(attributes: Any) -> str:
    for kv in attributes:
        if kv.key == "service.name":
            text = attribute_text(kv.value)
            if first_unprintable(text) is None:
                return text[:MAX_LABEL_VALUE_CHARS]
    return ""


def map_request(request: ExportLogsServiceRequest) -> _Mapped:
    out = _Mapped()
    for r, resource_logs in enumerate(request.resource_logs):
        resource = [kv for kv in resource_logs.resource.attributes if kv.key != "service.name"]
        service = _service(resource_logs.resource.attributes)
        for s, scope_logs in enumerate(resource_logs.scope_logs):
            scope = scope_logs.scope
            for i, record in enumerate(scope_logs.log_records):
                path = f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{i}]"
                layers = [record.attributes, scope.attributes, resource]
                _record(out, record, path, service, scope.name, layers)
    return out


@dataclass(frozen=True)
class LogExport:
    """What one export request stores and what its answer says was refused."""

    entries: list[LogEntry]
    rejected: int
    message: str


def parse_log_export(
    body: bytes, media_type: str, gzipped: bool, now: float, max_age_s: float
) -> LogExport:
    """The entries of a whole export request, validated as one batch."""
    request = decode_request(gunzip(body) if gzipped else body, media_type)
    mapped = map_request(request)
    rejected = sum(mapped.rejected.values())
    message = (
        "log records not stored: "
        + "; ".join(f"{n} {why}" for why, n in sorted(mapped.rejected.items()))
        if rejected
        else ""
    )
    if not mapped.entries:
        return LogExport([], rejected, message)
    try:
        entries = LOG_BATCH.validate_python(mapped.entries)
    except ValidationError as exc:  # the mapping keeps to the limits; a guard, named
        error = exc.errors()[0]
        where, problem = describe_error(error)
        index = error["loc"][0] if error["loc"] and isinstance(error["loc"][0], int) else 0
        path = mapped.origins[index] + where.partition("]")[2]
        raise InvalidInput(f"{path}: {problem}", field=path) from exc
    oldest, newest = now - max_age_s, now + MAX_FUTURE_S
    for index, entry in enumerate(entries):
        stamp = entry["timestamp"]
        if stamp is not None and not oldest <= stamp <= newest:
            path = f"{mapped.origins[index]}.timeUnixNano"
            problem = (
                f"is more than {MAX_FUTURE_S:g} s ahead of the server's clock ({now:.0f})"
                if stamp > newest
                else f"is older than the log retention, {max_age_s:g} s before the "
                f"server's clock ({now:.0f})"
            )
            raise InvalidInput(f"{path}: {stamp!r} {problem}", field=path)
    return LogExport(entries, rejected, message)


def export_response(export: LogExport, media_type: str) -> bytes:
    """OTLP's ExportLogsServiceResponse, in the request's encoding."""
    response = ExportLogsServiceResponse()
    if export.rejected:
        response.partial_success.rejected_log_records = export.rejected
        response.partial_success.error_message = export.message
    if media_type == JSON:
        return json_format.MessageToJson(response, indent=None).encode()
    return response.SerializeToString()
