"""Prometheus remote-write 1.0 bodies to Vigil samples; free of I/O.

The body is a snappy block holding a protobuf ``prometheus.WriteRequest``. Only four
messages and seven fields of it matter here, so a small hand-written reader takes them
instead of generated code: ``WriteRequest.timeseries`` (1), ``TimeSeries.labels`` (1) and
``.samples`` (2), ``Label.name``/``.value`` (1, 2), ``Sample.value`` (1, double) and
``.timestamp`` (2, int64 milliseconds). Everything else (metadata, exemplars, native
histograms) is skipped by wire type, as protobuf readers do with unknown fields.
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_right

import cramjam
from pydantic import ValidationError

from services.gateway.metrics.batch import (
    SAMPLE_BATCH,
    MalformedBody,
    PayloadTooLarge,
    _describe_sample_error,
    check_timestamps,
)
from shared.errors import InvalidInput
from shared.events import MAX_BATCH_BYTES, MAX_BATCH_SAMPLES, Sample

# a snappy block states its decoded length first; a larger one is refused before it is
# inflated, so a small body cannot make the gateway allocate gigabytes
MAX_DECODED_BYTES = 8 * MAX_BATCH_BYTES
NAME_LABEL = "__name__"

_DOUBLE = struct.Struct("<d")


class _Malformed(Exception):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise _Malformed("a varint runs past the end")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Malformed("a varint is longer than 10 bytes")


def _skip(data: bytes, pos: int, wire: int, end: int) -> int:
    """The position after a field this reader does not need."""
    if wire == 0:
        pos = _varint(data, pos)[1]
    elif wire == 1:
        pos += 8
    elif wire == 2:
        length, pos = _varint(data, pos)
        pos += length
    elif wire == 5:
        pos += 4
    else:
        raise _Malformed(f"a field has wire type {wire}, which protobuf lacks")
    if pos > end:
        raise _Malformed("a field runs past the end of its message")
    return pos


def _span(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Start and end of a length-delimited field whose length starts at ``pos``."""
    length = data[pos] if pos < end else 0x80
    if length < 0x80:
        pos += 1
    else:
        length, pos = _varint(data, pos)
    if pos + length > end:
        raise _Malformed(f"a field claims {length} bytes past the end of its message")
    return pos, pos + length


def _label(data: bytes, pos: int, end: int) -> tuple[str, str]:
    name = value = ""
    while pos < end:
        key = data[pos]
        pos += 1
        if key == 0x0A or key == 0x12:
            start, pos = _span(data, pos, end)
            try:
                text = data[start:pos].decode()
            except UnicodeDecodeError:
                raise _Malformed("a label name or value is not UTF-8") from None
            if key == 0x0A:
                name = text
            else:
                value = text
        else:
            if key >= 0x80:
                key, pos = _varint(data, pos - 1)
            pos = _skip(data, pos, key & 7, end)
    if pos != end:
        raise _Malformed("a label runs past its end")
    return name, value


def _sample(data: bytes, pos: int, end: int) -> tuple[float, int]:
    value, stamp = 0.0, 0
    while pos < end:
        key = data[pos]
        pos += 1
        if key == 0x09:
            if pos + 8 > end:
                raise _Malformed("a sample's value runs past its end")
            value = _DOUBLE.unpack_from(data, pos)[0]
            pos += 8
        elif key == 0x10:
            stamp, pos = _varint(data, pos)
            if stamp >= 1 << 63:
                stamp -= 1 << 64
        else:
            if key >= 0x80:
                key, pos = _varint(data, pos - 1)
            pos = _skip(data, pos, key & 7, end)
    if pos != end:
        raise _Malformed("a sample runs past its end")
    return value, stamp


Series = tuple[dict[str, str], list[tuple[float, int]]]


def _series(data: bytes, pos: int, end: int, seen: dict[bytes, tuple[str, str]]) -> Series:
    labels: dict[str, str] = {}
    points: list[tuple[float, int]] = []
    while pos < end:
        key = data[pos]
        pos += 1
        if key == 0x0A:
            start, pos = _span(data, pos, end)
            raw = data[start:pos]
            pair = seen.get(raw)
            if pair is None:
                pair = seen[raw] = _label(data, start, pos)
            labels[pair[0]] = pair[1]
        elif key == 0x12:
            start, pos = _span(data, pos, end)
            points.append(_sample(data, start, pos))
        else:
            if key >= 0x80:
                key, pos = _varint(data, pos - 1)
            pos = _skip(data, pos, key & 7, end)
    if pos != end:
        raise _Malformed("a time series runs past its end")
    return labels, points


def decode_write_request(data: bytes) -> list[Series]:
    """Each time series' labels (``__name__`` among them) and ``(value, ms)`` samples.

    Field keys below 128 are one byte, so the loops compare bytes; a label or sample
    runs to the end of its span, so a field that overruns it is caught by the check
    of each span against its parent's end.
    """
    series: list[Series] = []
    # the same label (job="api", __name__="up") recurs across a request's series: its
    # bytes are read once
    seen: dict[bytes, tuple[str, str]] = {}
    pos, end = 0, len(data)
    try:
        while pos < end:
            key = data[pos]
            if key == 0x0A:
                start, pos = _span(data, pos + 1, end)
                series.append(_series(data, start, pos, seen))
            else:
                key, pos = _varint(data, pos)
                pos = _skip(data, pos, key & 7, end)
    except _Malformed as exc:
        raise MalformedBody(f"body: not a protobuf WriteRequest: {exc}", field="body") from None
    return series


def decompress(body: bytes) -> bytes:
    """The snappy block's contents, refused unread when it declares more than the limit."""
    try:
        declared, _ = _varint(body, 0)
    except _Malformed:
        raise MalformedBody(
            "body: not snappy-compressed (empty or cut short)", field="body"
        ) from None
    if declared > MAX_DECODED_BYTES:
        raise PayloadTooLarge(
            f"body: decompresses to {declared} bytes, over the {MAX_DECODED_BYTES} byte "
            "limit; lower queue_config.max_samples_per_send",
            field="body",
        )
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise MalformedBody(
            f"body: not snappy block format (Content-Encoding: snappy): {exc}", field="body"
        ) from None


def _display(labels: dict[str, str]) -> str:
    name = labels.get(NAME_LABEL, "")
    rest = ",".join(f'{k}="{v:.40}"' for k, v in labels.items() if k != NAME_LABEL)
    return f"{name:.100}{{{rest:.200}}}"


def parse_remote_write(body: bytes, now: float, max_age_s: float) -> tuple[list[Sample], int]:
    """Samples of a whole WriteRequest, validated as one batch, and how many were skipped.

    NaN values (Prometheus' stale markers among them) and infinities are skipped: Vigil
    stores finite numbers only and staleness is judged by age. Empty label values are
    dropped, since Prometheus treats them as absent. Anything else wrong refuses the whole
    request; the error names the time series by index and by its labels.
    """
    series = decode_write_request(decompress(body))
    samples: list[Sample] = []
    starts: list[int] = []  # index of each series' first sample, to name a failing one
    owners: list[int] = []
    skipped = 0
    for index, (labels, points) in enumerate(series):
        name = labels.pop(NAME_LABEL, None)
        if name is None:
            raise InvalidInput(
                f"timeseries[{index}]: no __name__ label ({_display(labels)})",
                field=f"timeseries[{index}].labels",
            )
        kept = {k: v for k, v in labels.items() if v}
        labels[NAME_LABEL] = name
        starts.append(len(samples))
        owners.append(index)
        for value, stamp in points:
            if not math.isfinite(value):
                skipped += 1
                continue
            samples.append(
                {"name": name, "value": value, "timestamp": stamp / 1000, "labels": kept}
            )
        if len(samples) > MAX_BATCH_SAMPLES:
            raise PayloadTooLarge(
                f"body: more than {MAX_BATCH_SAMPLES} samples in one request; set "
                f"queue_config.max_samples_per_send to at most {MAX_BATCH_SAMPLES}",
                field="body",
            )
    if not samples:
        return [], skipped
    try:
        validated = SAMPLE_BATCH.validate_python(samples)
    except ValidationError as exc:
        error = exc.errors()[0]
        field, message = _describe_sample_error(error)
        flat = error["loc"][0] if error["loc"] and isinstance(error["loc"][0], int) else 0
        index = owners[bisect_right(starts, flat) - 1]
        where = f"timeseries[{index}]"
        field = where + field.partition("]")[2] if field.startswith("samples[") else where
        shown = _display(series[index][0])
        raise InvalidInput(f"{field}: {message} (series {shown})", field=field) from exc
    try:
        check_timestamps(validated, now, max_age_s)
    except InvalidInput as exc:
        flat = int(str(exc.field).partition("[")[2].partition("]")[0] or 0)
        index = owners[bisect_right(starts, flat) - 1]
        field = f"timeseries[{index}].samples.timestamp"
        detail = str(exc).partition(": ")[2]
        raise InvalidInput(
            f"{field}: {detail} (series {_display(series[index][0])})", field=field
        ) from exc
    return validated, skipped
