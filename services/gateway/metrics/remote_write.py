"""Prometheus remote-write 1.0 bodies to SampleBlock columns; free of I/O.

The body is a snappy block holding a protobuf ``prometheus.WriteRequest``; ``rwscan``
reads the seven fields that matter into columns and each series' raw label bytes.
A series is decoded and checked only the first time the gateway meets those bytes
(``SeriesCache``), so a request of known series costs a dictionary lookup per series
and array work for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cramjam
import numpy as np
from pydantic import ValidationError

from services.gateway.metrics.batch import (
    SAMPLE_BATCH,
    MalformedBody,
    PayloadTooLarge,
    _describe_sample_error,
    check_timestamps,
)
from services.gateway.metrics.rwscan import MalformedWriteRequest, decode_labels, scan
from shared.errors import InvalidInput
from shared.events import (
    MAX_BATCH_BYTES,
    MAX_BATCH_SAMPLES,
    MAX_FUTURE_S,
    canonical_labels,
    series_key,
)

# a snappy block states its decoded length first; a larger one is refused before it is
# inflated, so a small body cannot make the gateway allocate gigabytes
MAX_DECODED_BYTES = 8 * MAX_BATCH_BYTES
NAME_LABEL = "__name__"


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


Series = tuple[dict[str, str], list[tuple[float, int]]]


def decode_write_request(data: bytes) -> list[Series]:
    """Each time series' labels (``__name__`` among them) and ``(value, ms)`` samples: the
    request as a list, for tools and tests; ingest keeps it in columns."""
    try:
        keys, owner, ts_ms, values = scan(data)
        labels = [dict(decode_labels(key)) for key in keys]
    except MalformedWriteRequest as exc:
        raise MalformedBody(f"body: not a protobuf WriteRequest: {exc}", field="body") from None
    series: list[Series] = [(each, []) for each in labels]
    for index, value, stamp in zip(owner.tolist(), values.tolist(), ts_ms.tolist(), strict=True):
        series[index][1].append((value, stamp))
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


SeriesKey = tuple[str, str, int]
"""(metric name, canonical labels JSON, series_key): a series as SampleBlock names it."""


class SeriesCache:
    """Validated series by the raw protobuf bytes of their labels.

    A sender writes the same series every interval with the same label bytes, so the
    labels of a known series are neither decoded nor checked again: a dictionary lookup
    per series replaces both. Bounded: full, it starts over.
    """

    def __init__(self, limit: int = 200_000):
        self.limit = limit
        self.known: dict[bytes, SeriesKey] = {}

    def resolve(self, keys: list[bytes]) -> list[SeriesKey]:
        """The series of each key, learning new ones."""
        known = self.known
        found = [known.get(key) for key in keys]
        if None in found:
            for index, key in enumerate(keys):
                if found[index] is None:
                    found[index] = self._learn(index, key)
        return found  # type: ignore[return-value]

    def _learn(self, index: int, key: bytes) -> SeriesKey:
        try:
            pairs = decode_labels(key)
        except MalformedWriteRequest as exc:
            raise MalformedBody(f"body: not a protobuf WriteRequest: {exc}", field="body") from None
        labels = dict(pairs)
        name = labels.pop(NAME_LABEL, None)
        if name is None:
            raise InvalidInput(
                f"timeseries[{index}]: no __name__ label ({_display(labels)})",
                field=f"timeseries[{index}].labels",
            )
        kept = {k: v for k, v in labels.items() if v}
        try:
            sample = SAMPLE_BATCH.validate_python([{"name": name, "value": 0.0, "labels": kept}])[0]
        except ValidationError as exc:
            field, message = _describe_sample_error(exc.errors()[0])
            where = f"timeseries[{index}]"
            field = where + field.partition("]")[2] if field.startswith("samples[") else where
            labels[NAME_LABEL] = name
            raise InvalidInput(
                f"{field}: {message} (series {_display(labels)})", field=field
            ) from exc
        labels_json = canonical_labels(sample["labels"])
        series = (sample["name"], labels_json, series_key(sample["name"], labels_json))
        if len(self.known) >= self.limit:
            self.known.clear()
        self.known[key] = series
        return series


@dataclass(frozen=True)
class WriteColumns:
    """A request's finite samples as SampleBlock columns, and how many were skipped."""

    names: list[str]
    labels: list[str]
    keys: np.ndarray[Any, Any]
    series: np.ndarray[Any, Any]
    ts_ms: np.ndarray[Any, Any]
    values: np.ndarray[Any, Any]
    skipped: int


SERIES = SeriesCache()


def parse_remote_write(
    body: bytes, now: float, max_age_s: float, cache: SeriesCache = SERIES
) -> WriteColumns:
    """A whole WriteRequest as columns, validated as one batch.

    NaN values (Prometheus' stale markers among them) and infinities are skipped: Vigil
    stores finite numbers only and staleness is judged by age. Empty label values are
    dropped, since Prometheus treats them as absent. Anything else wrong refuses the whole
    request; the error names the time series by index and by its labels.
    """
    try:
        keys, owner, ts_ms, values = scan(decompress(body))
    except MalformedWriteRequest as exc:
        raise MalformedBody(f"body: not a protobuf WriteRequest: {exc}", field="body") from None
    finite = np.isfinite(values)
    kept = int(finite.sum())
    if kept > MAX_BATCH_SAMPLES:
        raise PayloadTooLarge(
            f"body: more than {MAX_BATCH_SAMPLES} samples in one request; set "
            f"queue_config.max_samples_per_send to at most {MAX_BATCH_SAMPLES}",
            field="body",
        )
    skipped = len(values) - kept
    if kept < len(values):
        owner, ts_ms, values = owner[finite], ts_ms[finite], values[finite]
    # every series is checked, also one whose samples were all skipped
    resolved = cache.resolve(keys)
    used = np.zeros(len(keys), dtype=bool)
    used[owner] = True
    if used.all():
        series = owner
    else:
        series = (np.cumsum(used) - 1)[owner]
        resolved = [resolved[i] for i in np.flatnonzero(used).tolist()]
    _check_times(ts_ms, owner, now, max_age_s, keys)
    return WriteColumns(
        names=[name for name, _, _ in resolved],
        labels=[labels for _, labels, _ in resolved],
        keys=np.array([key for _, _, key in resolved], dtype=np.uint64),
        series=series,
        ts_ms=ts_ms,
        values=values,
        skipped=skipped,
    )


def _check_times(
    ts_ms: np.ndarray[Any, Any],
    owner: np.ndarray[Any, Any],
    now: float,
    max_age_s: float,
    keys: list[bytes],
) -> None:
    """Every timestamp inside the window a sample batch allows; the error names the first
    series out of it."""
    outside = (ts_ms < (now - max_age_s) * 1000) | (ts_ms > (now + MAX_FUTURE_S) * 1000)
    if not outside.any():
        return
    first = int(np.argmax(outside))
    index = int(owner[first])
    try:
        check_timestamps(
            [{"name": "x", "value": 0.0, "timestamp": ts_ms[first] / 1000}], now, max_age_s
        )
    except InvalidInput as exc:
        field = f"timeseries[{index}].samples.timestamp"
        detail = str(exc).partition(": ")[2]
        shown = _display(dict(decode_labels(keys[index])))
        raise InvalidInput(f"{field}: {detail} (series {shown})", field=field) from exc
