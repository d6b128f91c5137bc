"""The remote-write encoder against a field-by-field encoding and against the gateway's
decoder: the vectorised sample encoding gives the same bytes for every timestamp width."""

from __future__ import annotations

import math
import struct

import cramjam
import numpy as np
import pytest

from services.gateway.metrics.remote_write import decode_write_request
from shared.promwire import (
    LabelCache,
    WriteRequestBuilder,
    encode,
    encode_samples,
    field,
    varint,
    write_request,
)

EDGES = [
    0, 1, 127, 128, 16_383, 16_384, 2**35 - 1, 2**35, 1_700_000_000_123, 2**42 - 1, 2**42,
    2**63 - 1, -1, -(2**63),
]  # fmt: skip


def one_by_one(values: list[float], stamps: list[int]) -> bytes:
    return b"".join(
        field(2, b"\x09" + struct.pack("<d", v) + b"\x10" + varint(ms))
        for v, ms in zip(values, stamps, strict=True)
    )


def test_samples_encode_as_field_by_field_at_every_varint_width() -> None:
    values = [float(n) - 3.5 for n in range(len(EDGES))]
    assert encode_samples(values, EDGES) == one_by_one(values, EDGES)


def test_random_samples_encode_as_field_by_field() -> None:
    rng = np.random.default_rng(9)
    stamps = rng.integers(-(2**62), 2**62, 2_000) >> rng.integers(0, 62, 2_000)
    values = rng.normal(size=2_000)
    assert encode_samples(values, stamps) == one_by_one(values.tolist(), stamps.tolist())


def test_a_request_decodes_to_what_was_encoded() -> None:
    stale = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
    series = [
        (
            {"__name__": "up", "job": "api"},
            [(1.0, 1_700_000_000_000), (math.inf, 1_700_000_001_000)],
        ),
        ({"__name__": "temp", "room": "é"}, [(-2.5, -7), (stale, 0)]),
    ]
    decoded = decode_write_request(bytes(cramjam.snappy.decompress_raw(encode(series))))
    assert [labels for labels, _ in decoded] == [labels for labels, _ in series]
    assert decoded[0][1] == series[0][1]
    assert decoded[1][1][0] == (-2.5, -7)
    assert struct.pack("<d", decoded[1][1][1][0]) == struct.pack("<d", stale)  # NaN bits kept


def test_the_builder_groups_series_sorts_labels_and_orders_samples_in_time() -> None:
    builder = WriteRequestBuilder()
    builder.add("cpu", {"z": "1", "a": "2"}, 3.0, 3_000)
    builder.add("mem", {}, 9.0, 1_000)
    builder.add("cpu", {"a": "2", "z": "1"}, 1.0, 1_000)
    builder.add("cpu", {"a": "2", "z": "1"}, 2.0, 2_000)
    assert (len(builder), builder.series) == (4, 2)
    assert builder.build() == write_request(
        [
            ({"__name__": "cpu", "a": "2", "z": "1"}, [(1.0, 1_000), (2.0, 2_000), (3.0, 3_000)]),
            ({"__name__": "mem"}, [(9.0, 1_000)]),
        ]
    )
    assert WriteRequestBuilder().build() == b""


def test_the_label_cache_is_bounded() -> None:
    cache = LabelCache(capacity=10)
    for n in range(25):
        cache.get("m", {"n": str(n)})
    assert len(cache) <= 10
    _, encoded = cache.get("m", {"n": "3"})
    assert encoded == write_request([({"__name__": "m", "n": "3"}, [])])[2:]


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        encode_samples([1.0, 2.0], [1])
