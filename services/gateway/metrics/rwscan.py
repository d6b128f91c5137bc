"""Raw pieces of a decompressed remote-write ``WriteRequest``: label keys and sample columns.

A sender repeats the same series request after request, so the gateway keeps each series
by the raw bytes of its labels and decodes them (``decode_labels``) only when they are
new; samples stay numpy columns instead of per-sample objects. ``scan`` is compiled
(``_rwscan.c``) when the build had a C compiler; otherwise its pure-Python twin here is
used, with the same results and the same verdict on malformed input. ``COMPILED`` says
which one ``scan`` is.

The wire rules are those of ``remote_write.decode_write_request``: known fields are
recognised by their one-byte keys, anything else is skipped by wire type (3, 4, 6 and 7
are malformed), every field and varint must end within its parent message and varints
are at most 10 bytes. ``scan`` checks each Label's protobuf structure but leaves its text
undecoded; ``scan`` plus ``decode_labels`` of every key refuses exactly what
``decode_write_request`` refuses.
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Callable
from types import ModuleType

import numpy as np

_compiled: ModuleType | None
try:
    _compiled = importlib.import_module("services.gateway.metrics._rwscan")
except ImportError:  # built without a C compiler
    _compiled = None

COMPILED = _compiled is not None

Scan = tuple[list[bytes], np.ndarray, np.ndarray, np.ndarray]

_DOUBLE = struct.Struct("<d")
_INT32_MAX = 2**31 - 1


class MalformedWriteRequest(ValueError):
    """The bytes are not a protobuf ``WriteRequest``; the message says how, briefly."""


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A varint within ``[pos, end)``, not truncated: a length past 64 bits is an overrun."""
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise MalformedWriteRequest("a varint runs past the end of its message")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise MalformedWriteRequest("a varint is longer than 10 bytes")


def _span(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """Start and end of a length-delimited field whose length prefix starts at ``pos``."""
    if pos < end and data[pos] < 0x80:
        length = data[pos]
        pos += 1
    else:
        length, pos = _varint(data, pos, end)
    if length > end - pos:
        raise MalformedWriteRequest("a field claims more bytes than its message holds")
    return pos, pos + length


def _skip(data: bytes, pos: int, end: int, first: int) -> int:
    """The position after a field this reader does not take, whose key starts at pos - 1."""
    key = first
    if first >= 0x80:
        key, pos = _varint(data, pos - 1, end)
    wire = key & 7
    if wire == 0:
        return _varint(data, pos, end)[1]
    if wire == 2:
        return _span(data, pos, end)[1]
    if wire == 1 or wire == 5:
        pos += 8 if wire == 1 else 4
        if pos > end:
            raise MalformedWriteRequest("a field runs past the end of its message")
        return pos
    raise MalformedWriteRequest("a field has a wire type protobuf lacks (3, 4, 6 or 7)")


def _label_fields(data: bytes, pos: int, end: int, text: bool = False) -> tuple[bytes, bytes]:
    """A Label's raw name and value (the last of each, empty when absent); with ``text``
    every name and value met must be UTF-8, overridden or not, as remote_write has it."""
    name = value = b""
    while pos < end:
        key = data[pos]
        pos += 1
        if key == 0x0A or key == 0x12:
            start, pos = _span(data, pos, end)
            raw = data[start:pos]
            if text:
                try:
                    raw.decode()
                except UnicodeDecodeError:
                    raise MalformedWriteRequest("a label name or value is not UTF-8") from None
            if key == 0x0A:
                name = raw
            else:
                value = raw
        else:
            pos = _skip(data, pos, end, key)
    return name, value


def _sample(data: bytes, pos: int, end: int) -> tuple[float, int]:
    value, stamp = 0.0, 0
    while pos < end:
        key = data[pos]
        pos += 1
        if key == 0x09:
            if end - pos < 8:
                raise MalformedWriteRequest("a sample's value runs past its end")
            value = _DOUBLE.unpack_from(data, pos)[0]
            pos += 8
        elif key == 0x10:
            stamp, pos = _varint(data, pos, end)
            stamp &= 0xFFFFFFFFFFFFFFFF  # int64 in two's complement, bits past 64 dropped
        else:
            pos = _skip(data, pos, end, key)
    return value, stamp


def scan_python(data: bytes) -> Scan:
    """``scan`` in Python: the fallback, and the reference the compiled one is tested by."""
    keys: list[bytes] = []
    owners: list[int] = []
    stamps: list[int] = []
    values: list[float] = []
    pos, end = 0, len(data)
    while pos < end:
        if data[pos] != 0x0A:
            key, pos = _varint(data, pos, end)
            pos = _skip(data, pos, end, key & 7)  # below 0x80: not read again
            continue
        pos, stop = _span(data, pos + 1, end)
        index = len(keys)
        if index == _INT32_MAX:
            raise MalformedWriteRequest("more time series than an int32 counts")
        parts: list[bytes] = []
        while pos < stop:
            field = pos
            key = data[pos]
            pos += 1
            if key == 0x0A:
                start, pos = _span(data, pos, stop)
                _label_fields(data, start, pos)
                parts.append(data[field:pos])
            elif key == 0x12:
                start, pos = _span(data, pos, stop)
                value, stamp = _sample(data, start, pos)
                owners.append(index)
                stamps.append(stamp)
                values.append(value)
            else:
                pos = _skip(data, pos, stop, key)
        keys.append(b"".join(parts))
    return (
        keys,
        np.array(owners, dtype=np.int32),
        # unsigned first: the varints are two's complement
        np.array(stamps, dtype=np.uint64).view(np.int64),
        np.array(values, dtype=np.float64),
    )


def _scan_compiled(data: bytes) -> Scan:
    assert _compiled is not None
    try:
        keys, owner, stamp, value = _compiled.scan(data)
    except _compiled.Malformed as exc:
        raise MalformedWriteRequest(str(exc)) from None
    return (
        keys,
        np.frombuffer(owner, dtype=np.int32),
        np.frombuffer(stamp, dtype=np.int64),
        np.frombuffer(value, dtype=np.float64),
    )


scan_compiled: Callable[[bytes], Scan] | None = _scan_compiled if COMPILED else None


def scan(data: bytes) -> Scan:
    """(keys, owner, ts_ms, value) of a decompressed WriteRequest.

    ``keys[i]``: the i-th TimeSeries' Label fields, raw (key byte and length prefix
    included), concatenated in order of appearance. Per sample, in order: ``owner`` (int32)
    the index of its series, ``ts_ms`` (int64) and ``value`` (float64); a missing field
    reads as 0. The arrays are writable. Raises ``MalformedWriteRequest``.
    """
    return _scan_compiled(data) if COMPILED else scan_python(data)


def decode_labels(key: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of one key from ``scan``, in order, duplicates kept.

    Raises ``MalformedWriteRequest`` when the key is not a run of Label fields or a name
    or value is not UTF-8.
    """
    pairs: list[tuple[str, str]] = []
    pos, end = 0, len(key)
    while pos < end:
        if key[pos] != 0x0A:
            raise MalformedWriteRequest("a series key holds a field other than a label")
        start, pos = _span(key, pos + 1, end)
        name, value = _label_fields(key, start, pos, text=True)
        pairs.append((name.decode(), value.decode()))
    return pairs
