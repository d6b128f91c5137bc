"""Prometheus remote-write 1.0 bodies: protobuf ``prometheus.WriteRequest`` in a snappy block.

Written by hand rather than with generated code, because only a handful of fields exist
in 1.0 (``WriteRequest.timeseries`` 1; ``TimeSeries.labels`` 1 and ``.samples`` 2;
``Label.name``/``.value`` 1, 2; ``Sample.value`` 1 double, ``.timestamp`` 2 int64 ms) and
because the samples, which are most of a body, can then be encoded for a whole request
at once with numpy instead of field by field in Python. A series' labels are encoded once
and reused (``LabelCache``): the forwarder sends the same series again and again.

Used by the remote-write forwarder (``services.metrics.remote``), the gateway's tests
and the remote-write bench.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import cramjam
import numpy as np

REMOTE_WRITE_VERSION = "0.1.0"
REMOTE_WRITE_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": REMOTE_WRITE_VERSION,
}
NAME_LABEL = "__name__"

_LEN = 2  # wire type of a length-delimited field
_SAMPLE_TAG = 2 << 3 | _LEN  # TimeSeries.samples
_SERIES_TAG = 1 << 3 | _LEN  # WriteRequest.timeseries
_VALUE_TAG = 1 << 3 | 1  # Sample.value, fixed64
_TIMESTAMP_TAG = 2 << 3  # Sample.timestamp, varint
_MAX_VARINT = 10
_SEPTET_LIMITS = np.array([1 << (7 * i) for i in range(1, _MAX_VARINT)], dtype=np.uint64)
_SHIFTS = np.arange(0, 7 * _MAX_VARINT, 7, dtype=np.uint64)
# a sample record before trimming: tag, length, value tag, 8 bytes, timestamp tag, varint
_RECORD = 2 + 1 + 8 + 1 + _MAX_VARINT


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint; a negative int64 takes ten bytes (two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return varint(number << 3 | _LEN) + varint(len(payload)) + payload


def encode_labels(labels: Iterable[tuple[str, str]]) -> bytes:
    """``TimeSeries.labels`` for the pairs in the order given (receivers want them sorted
    by name; ``LabelCache`` sorts)."""
    return b"".join(field(1, field(1, k.encode()) + field(2, v.encode())) for k, v in labels)


def encode_samples(
    values: Sequence[float] | np.ndarray, timestamps_ms: Sequence[int] | np.ndarray
) -> bytes:
    """``TimeSeries.samples`` fields for all pairs at once, vectorised.

    Every record is laid out at its widest (a ten-byte varint), then the bytes past each
    timestamp's own varint length are masked away in one pass.
    """
    vals = np.ascontiguousarray(values, dtype="<f8")
    stamps = np.asarray(timestamps_ms, dtype=np.int64).view(np.uint64)
    n = len(vals)
    if n != len(stamps):
        raise ValueError("values and timestamps differ in length")
    if n == 0:
        return b""
    septets = ((stamps[:, None] >> _SHIFTS) & np.uint64(0x7F)).astype(np.uint8)
    lengths = 1 + (stamps[:, None] >= _SEPTET_LIMITS).sum(axis=1)
    columns = np.arange(_MAX_VARINT)
    septets |= np.where(columns < (lengths - 1)[:, None], 0x80, 0).astype(np.uint8)
    record = np.empty((n, _RECORD), dtype=np.uint8)
    record[:, 0] = _SAMPLE_TAG
    record[:, 1] = 10 + lengths  # value tag + 8 + timestamp tag + varint: always < 128
    record[:, 2] = _VALUE_TAG
    record[:, 3:11] = vals.view(np.uint8).reshape(n, 8)
    record[:, 11] = _TIMESTAMP_TAG
    record[:, 12:] = septets
    keep = np.arange(_RECORD) < (12 + lengths)[:, None]
    return record[keep].tobytes()


def time_series(labels: Mapping[str, str], samples: Iterable[tuple[float, int]]) -> bytes:
    """One ``WriteRequest.timeseries`` field; labels in the mapping's order."""
    pairs = list(samples)
    body = encode_labels(labels.items()) + encode_samples(
        [v for v, _ in pairs], [ms for _, ms in pairs]
    )
    return field(1, body)


def write_request(series: Iterable[tuple[Mapping[str, str], Iterable[tuple[float, int]]]]) -> bytes:
    """A ``WriteRequest`` of (labels, [(value, timestamp ms), ...]) pairs, not compressed."""
    return b"".join(time_series(labels, samples) for labels, samples in series)


def snappy(data: bytes) -> bytes:
    """The snappy *block* format remote-write uses (not the framed stream format)."""
    return bytes(cramjam.snappy.compress_raw(data))


def encode(series: Iterable[tuple[Mapping[str, str], Iterable[tuple[float, int]]]]) -> bytes:
    """A ready-to-send body: ``write_request`` compressed."""
    return snappy(write_request(series))


SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class LabelCache:
    """Encoded labels per series (``__name__`` plus the sorted labels), bounded: when
    ``capacity`` series are held it starts afresh, so a churn of series costs re-encoding,
    never unbounded memory."""

    def __init__(self, capacity: int = 100_000):
        self.capacity = capacity
        self._encoded: dict[SeriesKey, bytes] = {}

    def get(self, name: str, labels: Mapping[str, str]) -> tuple[SeriesKey, bytes]:
        key = (name, tuple(sorted(labels.items())))
        found = self._encoded.get(key)
        if found is None:
            if len(self._encoded) >= self.capacity:
                self._encoded.clear()
            pairs = sorted([(NAME_LABEL, name), *((k, v) for k, v in key[1] if k != NAME_LABEL)])
            found = self._encoded[key] = encode_labels(pairs)
        return key, found

    def __len__(self) -> int:
        return len(self._encoded)


class WriteRequestBuilder:
    """Samples gathered into one ``WriteRequest``: grouped by series, each series'
    samples in timestamp order (receivers refuse a series going back in time within a
    request), all samples encoded in one vectorised call."""

    def __init__(self, labels: LabelCache | None = None):
        self.labels = labels if labels is not None else LabelCache()
        self._series: dict[SeriesKey, int] = {}
        self._series_labels: list[bytes] = []
        self._index: list[int] = []
        self._values: list[float] = []
        self._stamps: list[int] = []

    def add(self, name: str, labels: Mapping[str, str], value: float, timestamp_ms: int) -> None:
        key, encoded = self.labels.get(name, labels)
        index = self._series.get(key)
        if index is None:
            index = self._series[key] = len(self._series_labels)
            self._series_labels.append(encoded)
        self._index.append(index)
        self._values.append(value)
        self._stamps.append(timestamp_ms)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def series(self) -> int:
        return len(self._series_labels)

    def build(self) -> bytes:
        """The protobuf ``WriteRequest`` (not compressed)."""
        if not self._values:
            return b""
        index = np.asarray(self._index, dtype=np.int64)
        stamps = np.asarray(self._stamps, dtype=np.int64)
        order = np.lexsort((stamps, index))
        index = index[order]
        encoded = encode_samples(np.asarray(self._values, dtype="<f8")[order], stamps[order])
        # where each sample's record ends in ``encoded``: 12 bytes plus its varint
        ends = np.cumsum(12 + _varint_lengths(stamps[order]))
        bounds = np.flatnonzero(np.diff(index)) + 1  # first sample of each series but the first
        firsts = np.concatenate(([0], bounds))
        lasts = np.concatenate((bounds, [len(index)]))
        starts = np.concatenate(([0], ends[:-1]))
        parts: list[bytes] = []
        for series, first, last in zip(
            index[firsts].tolist(), firsts.tolist(), lasts.tolist(), strict=True
        ):
            labels = self._series_labels[series]
            start, end = int(starts[first]), int(ends[last - 1])
            parts.append(varint(_SERIES_TAG))
            parts.append(varint(len(labels) + end - start))
            parts.append(labels)
            parts.append(encoded[start:end])
        return b"".join(parts)

    def encode(self) -> bytes:
        """The compressed body, ready to send."""
        return snappy(self.build())


def _varint_lengths(stamps: np.ndarray) -> np.ndarray:
    as_unsigned = np.asarray(stamps, dtype=np.int64).view(np.uint64)
    return 1 + (as_unsigned[:, None] >= _SEPTET_LIMITS).sum(axis=1)
