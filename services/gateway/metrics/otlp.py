"""OTLP/HTTP metrics bodies to Vigil samples; free of I/O.

The mapping is the OpenTelemetry specification's "Prometheus and OpenMetrics
Compatibility", so an application exporting OTLP is queried with the same names and
labels as when Prometheus receives it:

- resource ``service.namespace``/``service.name`` → ``job``, ``service.instance.id`` →
  ``instance``; the other resource attributes go to one ``target_info`` gauge (value 1)
  per resource, with ``job`` and ``instance``; scope name and version →
  ``otel_scope_name``/``otel_scope_version``, scope attributes → ``otel_scope_<key>``;
- Gauge → gauge; cumulative monotonic Sum → counter ``<name>_total``; cumulative
  non-monotonic Sum → gauge; cumulative Histogram → ``_bucket{le}`` (cumulative, up to
  ``+Inf``), ``_sum`` (when sent) and ``_count``; Summary → ``{quantile}``, ``_sum`` and
  ``_count``;
- refused and counted in the answer's ``partial_success``: delta temporality (a
  stateless gateway cannot accumulate it into counters), exponential histograms (no
  native histograms here), points without a value or with a non-finite one, malformed
  histograms; points flagged NoRecordedValue are skipped without being counted.

Everything else about a sample (label limits, timestamp window) is checked as for
remote write: one invalid sample refuses the whole request, naming the metric.
"""

from __future__ import annotations

import gzip
import math
import zlib
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from pydantic import ValidationError

from services.gateway.metrics.batch import (
    SAMPLE_BATCH,
    MalformedBody,
    PayloadTooLarge,
    _describe_sample_error,
    check_timestamps,
)
from services.gateway.metrics.otlp_names import (
    Kind,
    attribute_text,
    float_text,
    labels_of,
    metric_name,
)
from services.gateway.metrics.remote_write import MAX_DECODED_BYTES
from shared.errors import InvalidInput
from shared.events import MAX_BATCH_SAMPLES, Sample
from shared.labels import MAX_LABEL_VALUE_CHARS, MAX_LABELS, printable

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

CUMULATIVE = pb.AGGREGATION_TEMPORALITY_CUMULATIVE
NO_RECORDED_VALUE = pb.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
IDENTIFYING = ("service.name", "service.namespace", "service.instance.id")

# why points are refused, as the answer's partial_success message says it
DELTA = "with delta or unspecified temporality (send cumulative temporality)"
EXPONENTIAL = "of exponential histograms (send explicit-bucket histograms)"
NO_VALUE = "without a value"
NOT_FINITE = "with a NaN or infinite value"
BAD_BUCKETS = "of histograms whose bucket_counts do not match explicit_bounds"
NO_NAME = "of metrics whose name has no usable character"


def gunzip(body: bytes) -> bytes:
    """A gzip body's contents, refused as soon as they pass the decoded size limit."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, MAX_DECODED_BYTES)
        if inflater.unconsumed_tail:
            raise PayloadTooLarge(
                f"body: decompresses to more than {MAX_DECODED_BYTES} bytes; export "
                "smaller batches",
                field="body",
            )
        if not inflater.eof:
            raise MalformedBody("body: the gzip stream is cut short", field="body")
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise MalformedBody(
            f"body: not gzip (Content-Encoding: gzip): {exc}", field="body"
        ) from None
    return data


def _without_exemplars(node: Any) -> Any:
    """OTLP JSON writes trace and span ids in hex where protobuf JSON expects base64;
    exemplars are not stored, so they are removed before the message is read."""
    if isinstance(node, dict):
        return {k: _without_exemplars(v) for k, v in node.items() if k != "exemplars"}
    if isinstance(node, list):
        return [_without_exemplars(v) for v in node]
    return node


def decode_request(body: bytes, media_type: str) -> ExportMetricsServiceRequest:
    """The request from its protobuf or OTLP JSON encoding (lowerCamelCase names,
    64-bit integers as strings or numbers, enums as integers, unknown fields ignored)."""
    request = ExportMetricsServiceRequest()
    if media_type == JSON:
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedBody(f"body: not valid JSON: {exc}", field="body") from None
        if not isinstance(raw, dict):
            raise MalformedBody("body: must be a JSON object (resourceMetrics)", field="body")
        try:
            json_format.ParseDict(_without_exemplars(raw), request, ignore_unknown_fields=True)
        except (json_format.ParseError, RecursionError, ValueError) as exc:
            raise MalformedBody(
                f"body: not an OTLP JSON ExportMetricsServiceRequest: {exc}", field="body"
            ) from None
        return request
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise MalformedBody(
            f"body: not a protobuf ExportMetricsServiceRequest: {exc}", field="body"
        ) from None
    return request


@dataclass
class _Mapped:
    samples: list[dict[str, Any]] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)  # first sample of each metric
    origins: list[tuple[str, str]] = field(default_factory=list)  # each metric's path, name
    rejected: Counter[str] = field(default_factory=Counter)

    def add(self, name: str, value: float, stamp: float | None, labels: dict[str, str]) -> None:
        self.samples.append({"name": name, "value": value, "timestamp": stamp, "labels": labels})
        if len(self.samples) > MAX_BATCH_SAMPLES:
            raise PayloadTooLarge(
                f"body: more than {MAX_BATCH_SAMPLES} samples in one request (histogram "
                "buckets count one each); export smaller batches",
                field="body",
            )

    def origin(self, index: int) -> tuple[str, str]:
        return self.origins[bisect_right(self.starts, index) - 1]


def _stamp(nanos: int) -> float | None:
    """Unix seconds; a point without a time is stamped when received."""
    return nanos / 1e9 if nanos else None


def _with(labels: dict[str, str], name: str, value: str) -> dict[str, str]:
    return {**labels, name: value}


def _number(point: pb.NumberDataPoint) -> float | None:
    which = point.WhichOneof("value")
    if which == "as_double":
        return point.as_double
    if which == "as_int":
        return float(point.as_int)
    return None


def _numbers(
    out: _Mapped,
    name: str,
    points: Iterable[pb.NumberDataPoint],
    base: dict[str, str],
) -> None:
    for point in points:
        if point.flags & NO_RECORDED_VALUE:
            continue
        value = _number(point)
        if value is None:
            out.rejected[NO_VALUE] += 1
        elif not math.isfinite(value):
            out.rejected[NOT_FINITE] += 1
        else:
            labels = {**labels_of(point.attributes), **base}
            out.add(name, value, _stamp(point.time_unix_nano), _clean(labels))


def _histograms(
    out: _Mapped,
    name: str,
    points: Iterable[pb.HistogramDataPoint],
    base: dict[str, str],
) -> None:
    for point in points:
        if point.flags & NO_RECORDED_VALUE:
            continue
        bounds = list(point.explicit_bounds)
        counts = list(point.bucket_counts)
        if (counts and len(counts) != len(bounds) + 1) or any(
            not a < b for a, b in pairwise(bounds)
        ):
            out.rejected[BAD_BUCKETS] += 1
            continue
        labels = _clean({**labels_of(point.attributes), **base})
        stamp = _stamp(point.time_unix_nano)
        running = 0
        for bound, count in zip(bounds, counts, strict=False):
            running += count
            if math.isfinite(bound):
                out.add(
                    f"{name}_bucket", float(running), stamp, _with(labels, "le", float_text(bound))
                )
        out.add(f"{name}_bucket", float(point.count), stamp, _with(labels, "le", "+Inf"))
        if point.HasField("sum") and math.isfinite(point.sum):
            out.add(f"{name}_sum", point.sum, stamp, labels)
        out.add(f"{name}_count", float(point.count), stamp, labels)


def _summaries(
    out: _Mapped,
    name: str,
    points: Iterable[pb.SummaryDataPoint],
    base: dict[str, str],
) -> None:
    for point in points:
        if point.flags & NO_RECORDED_VALUE:
            continue
        labels = _clean({**labels_of(point.attributes), **base})
        stamp = _stamp(point.time_unix_nano)
        for quantile in sorted(point.quantile_values, key=lambda q: q.quantile):
            if math.isfinite(quantile.value):
                text = float_text(quantile.quantile)
                out.add(name, quantile.value, stamp, _with(labels, "quantile", text))
        if math.isfinite(point.sum):
            out.add(f"{name}_sum", point.sum, stamp, labels)
        out.add(f"{name}_count", float(point.count), stamp, labels)


def _clean(labels: dict[str, str]) -> dict[str, str]:
    """Empty values are absent labels, as in Prometheus."""
    return {k: v for k, v in labels.items() if v}


def _metric(out: _Mapped, metric: pb.Metric, base: dict[str, str]) -> None:
    which = metric.WhichOneof("data")
    if which is None:
        return
    data = getattr(metric, which)
    count = len(data.data_points)
    if which == "exponential_histogram":
        out.rejected[EXPONENTIAL] += count
        return
    if which in ("sum", "histogram") and data.aggregation_temporality != CUMULATIVE:
        out.rejected[DELTA] += count
        return
    kind: Kind = {"gauge": "gauge", "histogram": "histogram", "summary": "summary"}.get(
        which, "counter" if which == "sum" and data.is_monotonic else "gauge"
    )  # type: ignore[assignment]
    name = metric_name(metric.name, metric.unit, kind)
    if not name:
        out.rejected[NO_NAME] += count
        return
    if which == "histogram":
        _histograms(out, name, data.data_points, base)
    elif which == "summary":
        _summaries(out, name, data.data_points, base)
    else:
        _numbers(out, name, data.data_points, base)


def _target_info(
    resource_labels: dict[str, str], identity: dict[str, str], stamp: float | None
) -> dict[str, Any]:
    """Descriptive resource attributes (host, process, SDK) are kept whatever their
    text: made printable and cut to the label limits, at most ``MAX_LABELS`` labels."""
    room = MAX_LABELS - len(identity)
    kept = {
        name: printable(value, MAX_LABEL_VALUE_CHARS)
        for name, value in sorted(resource_labels.items())[:room]
        if value and name not in identity
    }
    return {"name": "target_info", "value": 1.0, "timestamp": stamp, "labels": {**kept, **identity}}


def _identity(attributes: Any) -> tuple[dict[str, str], dict[str, str]]:
    """``job`` and ``instance`` from the service attributes; the rest as labels (a
    namespace without a service name makes no ``job``, so it stays among the rest)."""
    service = {kv.key: kv for kv in attributes if kv.key in IDENTIFYING}
    name = attribute_text(service["service.name"].value) if "service.name" in service else ""
    if not name:
        service.pop("service.namespace", None)
    rest = [kv for kv in attributes if kv.key not in service]
    namespace = (
        attribute_text(service["service.namespace"].value) if "service.namespace" in service else ""
    )
    instance = service.get("service.instance.id")
    identity = {
        "job": f"{namespace}/{name}" if namespace and name else name,
        "instance": attribute_text(instance.value) if instance is not None else "",
    }
    return _clean(identity), labels_of(rest)


def map_request(request: ExportMetricsServiceRequest) -> _Mapped:
    out = _Mapped()
    for r, resource_metrics in enumerate(request.resource_metrics):
        identity, others = _identity(resource_metrics.resource.attributes)
        first = len(out.samples)
        for s, scope_metrics in enumerate(resource_metrics.scope_metrics):
            scope = scope_metrics.scope
            base = {
                **labels_of(scope.attributes, "otel_scope_"),
                "otel_scope_name": scope.name,
                "otel_scope_version": scope.version,
                **identity,
            }
            for m, metric in enumerate(scope_metrics.metrics):
                out.starts.append(len(out.samples))
                path = f"resourceMetrics[{r}].scopeMetrics[{s}].metrics[{m}]"
                out.origins.append((path, metric.name))
                _metric(out, metric, base)
        stamps = [x["timestamp"] for x in out.samples[first:] if x["timestamp"] is not None]
        if others and len(out.samples) > first:
            out.starts.append(len(out.samples))
            out.origins.append((f"resourceMetrics[{r}].resource", "target_info"))
            info = _target_info(others, identity, max(stamps) if stamps else None)
            out.add(info["name"], info["value"], info["timestamp"], info["labels"])
    return out


@dataclass(frozen=True)
class Export:
    """What one export request stores and what its answer says was refused."""

    samples: list[Sample]
    rejected: int
    message: str


def parse_export(
    body: bytes, media_type: str, gzipped: bool, now: float, max_age_s: float
) -> Export:
    """The samples of a whole export request, validated as one batch.

    Points that cannot be mapped are counted, not stored; an invalid sample (label
    limits, timestamps outside the window) refuses the whole request with the metric's
    path and name, as remote write does.
    """
    request = decode_request(gunzip(body) if gzipped else body, media_type)
    mapped = map_request(request)
    rejected = sum(mapped.rejected.values())
    message = (
        "data points not stored: "
        + "; ".join(f"{n} {why}" for why, n in sorted(mapped.rejected.items()))
        if rejected
        else ""
    )
    if not mapped.samples:
        return Export([], rejected, message)
    try:
        validated = SAMPLE_BATCH.validate_python(mapped.samples)
    except ValidationError as exc:
        error = exc.errors()[0]
        field_name, problem = _describe_sample_error(error)
        flat = error["loc"][0] if error["loc"] and isinstance(error["loc"][0], int) else 0
        path, metric = mapped.origin(flat)
        where = path + field_name.partition("]")[2]
        stored_as = mapped.samples[flat]["name"]
        raise InvalidInput(
            f"{where}: {problem} (metric {metric:.100}, stored as {stored_as:.100})", field=where
        ) from exc
    try:
        check_timestamps(validated, now, max_age_s)
    except InvalidInput as exc:
        flat = int(str(exc.field).partition("[")[2].partition("]")[0] or 0)
        path, metric = mapped.origin(flat)
        where = path + ".dataPoints.timeUnixNano"
        detail = str(exc).partition(": ")[2]
        raise InvalidInput(f"{where}: {detail} (metric {metric:.100})", field=where) from exc
    return Export(validated, rejected, message)


def export_response(export: Export, media_type: str) -> bytes:
    """OTLP's ExportMetricsServiceResponse, in the request's encoding."""
    response = ExportMetricsServiceResponse()
    if export.rejected:
        response.partial_success.rejected_data_points = export.rejected
        response.partial_success.error_message = export.message
    if media_type == JSON:
        return json_format.MessageToJson(response, indent=None).encode()
    return response.SerializeToString()


def status_body(code: int, message: str, media_type: str) -> bytes:
    """A ``google.rpc.Status`` (code, message), the body OTLP/HTTP errors carry. Two
    scalar fields, written by hand rather than taking a dependency for them."""
    if media_type == JSON:
        return orjson.dumps({"code": code, "message": message})
    text = message.encode()
    out = bytearray()
    if code:
        out += b"\x08" + _varint(code)
    out += b"\x12" + _varint(len(text)) + text
    return bytes(out)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
