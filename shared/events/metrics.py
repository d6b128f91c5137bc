"""Metric samples: what the gateway, the agent and the synthetic prober publish."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Container, Iterator
from typing import Annotated, Any, NotRequired

import cramjam
import numpy as np
import orjson
from pydantic import ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from shared.events.base import Event, UndecodableEvent
from shared.labels import (
    LABEL_NAME_PATTERN,
    MAX_LABEL_NAME_CHARS,
    MAX_LABEL_VALUE_CHARS,
    MAX_LABELS,
    PRINTABLE_PATTERN,
)

METRIC_NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:.]*$"
MAX_METRIC_NAME_CHARS = 200
MAX_BATCH_SAMPLES = 10_000
MAX_BATCH_BYTES = 5 * 1024 * 1024
# how far ahead of its arrival a sample may be stamped (clock skew); how far back is the
# metrics retention (Settings.metrics_retention_s)
MAX_FUTURE_S = 300.0

LabelName = Annotated[
    str, Field(min_length=1, max_length=MAX_LABEL_NAME_CHARS, pattern=LABEL_NAME_PATTERN)
]
LabelValue = Annotated[str, Field(max_length=MAX_LABEL_VALUE_CHARS, pattern=PRINTABLE_PATTERN)]
LabelMap = Annotated[dict[LabelName, LabelValue], Field(max_length=MAX_LABELS)]


@with_config(ConfigDict(extra="forbid", strict=True))
class Sample(TypedDict):
    """One measurement. ``timestamp`` is Unix seconds; absent means "when received".

    Labels are bounded here, on every hop: at most ``MAX_LABELS``, Prometheus names,
    printable values of at most ``MAX_LABEL_VALUE_CHARS``. The timestamp's window depends
    on when the batch arrived, so the gateway checks it (``parse_sample_batch``).

    A TypedDict rather than a model: batches of thousands are validated on every hop,
    and plain dicts validate several times faster. After validation every key is present.
    """

    name: Annotated[
        str, Field(min_length=1, max_length=MAX_METRIC_NAME_CHARS, pattern=METRIC_NAME_PATTERN)
    ]
    value: Annotated[float, Field(allow_inf_nan=False)]
    timestamp: NotRequired[Annotated[float | None, Field(default=None, allow_inf_nan=False)]]
    labels: NotRequired[Annotated[LabelMap, Field(default_factory=dict)]]


class SamplesIngested(Event):
    """A batch of samples accepted as a whole; aggregate_id names the source."""

    samples: list[Sample]
    received_at: float = Field(description="Unix seconds when the batch was accepted")

    @classmethod
    def of_validated(cls, samples: list[Sample], **envelope: Any) -> SamplesIngested:
        """A batch from samples that were validated already: checking thousands of them
        again would double the cost of ingest."""
        return cls.model_construct(samples=samples, **envelope)

    @property
    def count(self) -> int:
        return len(self.samples)

    def watched(self, names: Container[str]) -> Iterator[tuple[int, Sample]]:
        """The samples whose metric is in ``names``, with their index in the batch."""
        for index, sample in enumerate(self.samples):
            if sample["name"] in names:
                yield index, sample

    def all_samples(self) -> list[Sample]:
        return self.samples

    def encode(self) -> bytes:
        # samples are plain dicts: orjson writes them directly, without a model dump
        body = self.model_dump(mode="json", exclude={"samples"})
        body["samples"] = self.samples
        return orjson.dumps(body)


def canonical_labels(labels: dict[str, str]) -> str:
    """Sorted-key compact JSON, so equal label sets are equal strings: a series' key."""
    return orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode()


_LABEL_MAP: TypeAdapter[dict[str, str]] = TypeAdapter(LabelMap, config=ConfigDict(strict=True))
_KNOWN_SERIES_LIMIT = 200_000
_known_labels: dict[str, dict[str, str]] = {}
_known_names: set[str] = set()
_METRIC_NAME = re.compile(METRIC_NAME_PATTERN)


def series_labels(name: str, labels_json: str) -> dict[str, str]:
    """A SampleBlock series' labels, the series held to the same bounds as a Sample.

    Each distinct name and label set is checked once per process (bounded caches): a
    fleet sends the same series again every scrape. The dict is shared, not copied:
    callers read it only.
    """
    if name not in _known_names:
        if not (0 < len(name) <= MAX_METRIC_NAME_CHARS and _METRIC_NAME.fullmatch(name)):
            raise UndecodableEvent(f"invalid metric name {name[:200]!r}")
        if len(_known_names) >= _KNOWN_SERIES_LIMIT:
            _known_names.clear()
        _known_names.add(name)
    labels = _known_labels.get(labels_json)
    if labels is None:
        try:
            labels = _LABEL_MAP.validate_json(labels_json)
        except ValidationError as exc:
            raise UndecodableEvent(f"invalid series labels {labels_json[:200]!r}: {exc}") from exc
        if canonical_labels(labels) != labels_json:
            raise UndecodableEvent(f"series labels not in canonical form: {labels_json[:200]!r}")
        if len(_known_labels) >= _KNOWN_SERIES_LIMIT:
            _known_labels.clear()
        _known_labels[labels_json] = labels
    return labels


# a block inflates to at most this: MAX_BATCH_SAMPLES rows of bounded series and more
MAX_BLOCK_BYTES = 64 * 1024 * 1024


def series_key(name: str, labels_json: str) -> int:
    """A series' 64-bit key in a SampleBlock: what a consumer maps to its own series
    in bulk, without reading the series' name and labels again."""
    digest = hashlib.blake2b(f"{name}\0{labels_json}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _string_list(data: bytes, length: int, what: str) -> list[str]:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UndecodableEvent(f"SampleBlock: {what} not JSON: {exc}") from None
    if not (isinstance(parsed, list) and len(parsed) == length and set(map(type, parsed)) <= {str}):
        raise UndecodableEvent(f"SampleBlock: {what} must be a list of {length} strings")
    return parsed


class SampleBlock(Event):
    """A batch of samples as columns, for protocols that send many series at once.

    Encoded as an LZ4 block (after a one-line JSON prefix stating its type and inflated
    size) of three JSON lines and four little-endian binary columns: the envelope (with
    ``count`` samples and ``series_count`` series), each series' metric name, each
    series' canonical labels JSON; then each series' 64-bit key (``series_key``), and per
    sample its time (int64 Unix ms), value (float64, finite) and series index (uint32).

    A remote-write request holds a sample or two per series: as JSON samples every
    consumer would parse and check each one. Here a consumer maps each series by its key
    in bulk and takes the rest as arrays; names and labels are parsed only by the
    consumer that asks for them (the evaluator reads names, the store labels only of a
    series new to it).
    """

    received_at: float = Field(description="Unix seconds when the batch was accepted")
    count: int = Field(ge=0, description="How many samples the columns hold")
    series_count: int = Field(ge=0, description="How many distinct series they name")

    _names_json: bytes = PrivateAttr(default=b"[]")
    _labels_json: bytes = PrivateAttr(default=b"[]")
    _names: list[str] | None = PrivateAttr(default=None)
    _labels: list[str] | None = PrivateAttr(default=None)
    _keys: np.ndarray[Any, np.dtype[np.uint64]] = PrivateAttr()
    _ts_ms: np.ndarray[Any, np.dtype[np.int64]] = PrivateAttr()
    _values: np.ndarray[Any, np.dtype[np.float64]] = PrivateAttr()
    _series: np.ndarray[Any, np.dtype[np.uint32]] = PrivateAttr()

    @classmethod
    def of_columns(
        cls,
        names: list[str],
        labels: list[str],
        keys: np.ndarray[Any, Any],
        series: np.ndarray[Any, Any],
        ts_ms: np.ndarray[Any, Any],
        values: np.ndarray[Any, Any],
        **envelope: Any,
    ) -> SampleBlock:
        """A block from series and columns the caller has checked already."""
        block = cls.model_construct(count=len(values), series_count=len(names), **envelope)
        block._names, block._labels = names, labels
        block._keys = np.ascontiguousarray(keys, dtype="<u8")
        block._ts_ms = np.ascontiguousarray(ts_ms, dtype="<i8")
        block._values = np.ascontiguousarray(values, dtype="<f8")
        block._series = np.ascontiguousarray(series, dtype="<u4")
        return block

    @classmethod
    def of_samples(cls, samples: list[Sample], received_at: float, **envelope: Any) -> SampleBlock:
        """The block holding these validated samples (untimed ones at ``received_at``)."""
        index: dict[tuple[str, str], int] = {}
        rows, stamps, values = [], [], []
        for sample in samples:
            key = (sample["name"], canonical_labels(sample.get("labels") or {}))
            ts = sample.get("timestamp")
            rows.append(index.setdefault(key, len(index)))
            stamps.append(round((received_at if ts is None else ts) * 1000))
            values.append(sample["value"])
        return cls.of_columns(
            [name for name, _ in index],
            [labels for _, labels in index],
            np.array([series_key(*key) for key in index], dtype=np.uint64),
            np.array(rows, dtype=np.uint32),
            np.array(stamps, dtype=np.int64),
            np.array(values, dtype=np.float64),
            received_at=received_at,
            **envelope,
        )

    @property
    def names(self) -> list[str]:
        """Each series' metric name (unchecked until ``series_labels``)."""
        if self._names is None:
            self._names = _string_list(self._names_json, self.series_count, "names")
        return self._names

    @property
    def labels(self) -> list[str]:
        """Each series' canonical labels JSON (unchecked until ``series_labels``)."""
        if self._labels is None:
            self._labels = _string_list(self._labels_json, self.series_count, "labels")
        return self._labels

    @property
    def keys(self) -> np.ndarray[Any, np.dtype[np.uint64]]:
        return self._keys

    @property
    def ts_ms(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        return self._ts_ms

    @property
    def values(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        return self._values

    @property
    def series(self) -> np.ndarray[Any, np.dtype[np.uint32]]:
        return self._series

    def encode(self) -> bytes:
        inner = b"".join(
            (
                orjson.dumps(self.model_dump(mode="json")),
                b"\n",
                orjson.dumps(self.names),
                b"\n",
                orjson.dumps(self.labels),
                b"\n",
                self._keys.tobytes(),
                self._ts_ms.tobytes(),
                self._values.tobytes(),
                self._series.tobytes(),
            )
        )
        return self._pack(inner)

    @staticmethod
    def _pack(inner: bytes) -> bytes:
        packed = cramjam.lz4.compress_block(inner, store_size=False)
        return b'{"type":"SampleBlock","lz4":%d}\n%b' % (len(inner), bytes(packed))

    @classmethod
    def from_payload(cls, payload: bytes) -> SampleBlock:
        return cls._from_inner(cls._unpack(payload))

    @staticmethod
    def _unpack(payload: bytes) -> bytes:
        """What ``encode`` compressed: the series repeat across batches in their label
        names and values, and LZ4 takes a block to about a seventh of its size for little
        CPU, which the stream's disk, the broker and every consumer feel."""
        prefix, newline, packed = payload.partition(b"\n")
        try:
            size = orjson.loads(prefix)["lz4"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise UndecodableEvent("SampleBlock: no LZ4 size before the block") from None
        if not isinstance(size, int) or not 0 < size <= MAX_BLOCK_BYTES or not newline:
            raise UndecodableEvent(f"SampleBlock: an LZ4 size of {size!r} is out of bounds")
        try:
            inner = bytes(cramjam.lz4.decompress_block(packed, output_len=size))
        except cramjam.DecompressionError as exc:
            raise UndecodableEvent(f"SampleBlock: not LZ4: {exc}") from None
        if len(inner) != size:
            raise UndecodableEvent(f"SampleBlock: {len(inner)} bytes inflated, {size} stated")
        return inner

    @classmethod
    def _from_inner(cls, inner: bytes) -> SampleBlock:
        parts = inner.split(b"\n", 3)
        if len(parts) != 4:
            raise UndecodableEvent("SampleBlock: fewer than three JSON lines before the columns")
        head, names, labels, tail = parts
        try:
            block = cls.model_validate_json(head)
        except ValidationError as exc:
            raise UndecodableEvent(f"invalid SampleBlock: {exc}") from exc
        n, m = block.count, block.series_count
        if len(tail) != 8 * m + 20 * n:
            raise UndecodableEvent(
                f"SampleBlock: {len(tail)} column bytes for {n} samples of {m} series, "
                f"not {8 * m + 20 * n}"
            )
        block._names_json, block._labels_json = names, labels
        block._keys = np.frombuffer(tail, dtype="<u8", count=m)
        block._ts_ms = np.frombuffer(tail, dtype="<i8", count=n, offset=8 * m)
        block._values = np.frombuffer(tail, dtype="<f8", count=n, offset=8 * m + 8 * n)
        block._series = np.frombuffer(tail, dtype="<u4", count=n, offset=8 * m + 16 * n)
        if n and int(block._series.max()) >= m:
            raise UndecodableEvent("SampleBlock: a sample names a series past the list")
        if not np.isfinite(block._values).all():
            raise UndecodableEvent("SampleBlock: a value is NaN or infinite")
        return block

    def watched(self, names: Container[str]) -> Iterator[tuple[int, Sample]]:
        """The samples whose metric is in ``names``, with their index in the block, in
        order; the others are never turned into Python objects."""
        picked = [i for i, name in enumerate(self.names) if name in names]
        if not picked:
            return
        if len(picked) == self.series_count:
            rows = np.arange(self.count)
        else:
            rows = np.flatnonzero(np.isin(self._series, picked))
        yield from zip(rows.tolist(), self._samples(rows), strict=True)

    def all_samples(self) -> list[Sample]:
        return self._samples(np.arange(self.count))

    def _samples(self, rows: np.ndarray[Any, Any]) -> list[Sample]:
        names, labels = self.names, self.labels
        return [
            {
                "name": names[s],
                "value": v,
                "timestamp": t / 1000,
                "labels": series_labels(names[s], labels[s]),
            }
            for s, t, v in zip(
                self._series[rows].tolist(),
                self._ts_ms[rows].tolist(),
                self._values[rows].tolist(),
                strict=True,
            )
        ]


SampleBatch = SamplesIngested | SampleBlock
"""Every event on METRICS that carries samples."""
