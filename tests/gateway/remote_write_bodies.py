"""Remote-write 1.0 bodies built by hand: protobuf ``prometheus.WriteRequest``, snappy block."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

import cramjam

REMOTE_WRITE_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def time_series(labels: Mapping[str, str], samples: Iterable[tuple[float, int]]) -> bytes:
    body = b"".join(
        field(1, field(1, k.encode()) + field(2, v.encode())) for k, v in labels.items()
    )
    for value, ms in samples:
        body += field(2, b"\x09" + struct.pack("<d", value) + b"\x10" + varint(ms))
    return field(1, body)


def write_request(series: Iterable[tuple[Mapping[str, str], Iterable[tuple[float, int]]]]) -> bytes:
    return b"".join(time_series(labels, samples) for labels, samples in series)


def snappy(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))
