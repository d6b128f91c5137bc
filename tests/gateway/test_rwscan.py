"""The remote-write scanner: compiled and pure-Python alike, against bodies whose contents
are known (built by the product's encoder or generated with a model of what they hold),
and against each other on hostile bytes.

With VIGIL_REQUIRE_COMPILED=1 a missing compiled module fails the tests instead of
skipping its half of them.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.gateway.metrics import rwscan
from services.gateway.metrics.rwscan import MalformedWriteRequest, Scan, decode_labels
from shared.promwire import LabelCache, WriteRequestBuilder, encode_labels, varint, write_request

REQUIRE_COMPILED = os.environ.get("VIGIL_REQUIRE_COMPILED") == "1"
MASK64 = (1 << 64) - 1
INT64 = st.integers(-(1 << 63), (1 << 63) - 1)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Scanner = Callable[[bytes], Scan]


def compiled_scan() -> Scanner:
    if rwscan.scan_compiled is None:
        if REQUIRE_COMPILED:
            pytest.fail("services.gateway.metrics._rwscan is not built (VIGIL_REQUIRE_COMPILED=1)")
        pytest.skip("services.gateway.metrics._rwscan is not built (no C compiler?)")
    return rwscan.scan_compiled


def implementations() -> list[Scanner]:
    """The Python twin, and the compiled scan when built (or required)."""
    if rwscan.scan_compiled is None and not REQUIRE_COMPILED:
        return [rwscan.scan_python]
    return [rwscan.scan_python, compiled_scan()]


@pytest.fixture(params=["compiled", "python"])
def scan(request: pytest.FixtureRequest) -> Scanner:
    return compiled_scan() if request.param == "compiled" else rwscan.scan_python


def test_compiled_module_is_built_when_required() -> None:
    if not REQUIRE_COMPILED:
        pytest.skip("VIGIL_REQUIRE_COMPILED is not set")
    assert rwscan.COMPILED
    assert rwscan.scan_compiled is not None


def test_public_scan_uses_the_implementation_built() -> None:
    body = write_request([({"__name__": "up"}, [(1.0, 5)])])
    keys, owner, stamps, values = rwscan.scan(body)
    assert keys == [encode_labels([("__name__", "up")])]
    assert (owner.tolist(), stamps.tolist(), values.tolist()) == ([0], [5], [1.0])
    assert owner.flags.writeable and stamps.flags.writeable and values.flags.writeable
    with pytest.raises(MalformedWriteRequest):
        rwscan.scan(body[:-1])
    assert (rwscan.scan_compiled is not None) == rwscan.COMPILED


# --- bodies from the product's encoder -----------------------------------------------------


def test_builder_body_gives_its_series_and_samples(scan: Scanner) -> None:
    builder = WriteRequestBuilder(LabelCache())
    builder.add("cpu", {"host": "b", "core": "1"}, 0.25, 1_700_000_000_002)
    builder.add("cpu", {"host": "b", "core": "1"}, 0.5, 1_700_000_000_001)
    builder.add("up", {"job": "api"}, 1.0, -5)
    builder.add("cpu", {"host": "a", "core": "0"}, math.inf, 0)
    keys, owner, stamps, values = scan(builder.build())
    assert keys == [
        encode_labels([("__name__", "cpu"), ("core", "1"), ("host", "b")]),
        encode_labels([("__name__", "up"), ("job", "api")]),
        encode_labels([("__name__", "cpu"), ("core", "0"), ("host", "a")]),
    ]
    assert [decode_labels(k) for k in keys] == [
        [("__name__", "cpu"), ("core", "1"), ("host", "b")],
        [("__name__", "up"), ("job", "api")],
        [("__name__", "cpu"), ("core", "0"), ("host", "a")],
    ]
    # the builder puts each series' samples in timestamp order
    assert owner.dtype == np.int32 and owner.tolist() == [0, 0, 1, 2]
    assert stamps.dtype == np.int64
    assert stamps.tolist() == [1_700_000_000_001, 1_700_000_000_002, -5, 0]
    assert values.dtype == np.float64 and values.tolist() == [0.5, 0.25, 1.0, math.inf]
    owner[0] = 7  # the columns are the caller's to change
    values[0] = 2.0


def test_many_series_and_samples(scan: Scanner) -> None:
    """Past the first allocation of the columns, with label bytes growing series by series."""
    series = [
        (
            {"__name__": f"m{i}", "pad": "x" * (i % 300)},
            [(i + j / 8, i * 1000 - j) for j in range(i % 7)],
        )
        for i in range(3000)
    ]
    keys, owner, stamps, values = scan(write_request(series))
    assert [decode_labels(k) for k in keys] == [list(labels.items()) for labels, _ in series]
    expected = [(i, v, ms) for i, (_, points) in enumerate(series) for v, ms in points]
    assert len(expected) > 4096
    assert owner.tolist() == [i for i, _, _ in expected]
    assert values.tolist() == [v for _, v, _ in expected]
    assert stamps.tolist() == [ms for _, _, ms in expected]


def test_empty_body(scan: Scanner) -> None:
    keys, owner, stamps, values = scan(b"")
    assert keys == [] and len(owner) == len(stamps) == len(values) == 0
    assert (owner.dtype, stamps.dtype, values.dtype) == (np.int32, np.int64, np.float64)


# --- hand-made bodies: the wire rules one by one -----------------------------------------------


def ld(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def padded(value: int, extra: int) -> bytes:
    """A varint with ``extra`` needless continuation bytes (still valid protobuf)."""
    out = bytearray(varint(value))
    if extra:
        out[-1] |= 0x80
        out += b"\x80" * (extra - 1) + b"\x00"
    return bytes(out)


LABEL = ld(1, ld(1, b"__name__") + ld(2, b"up"))
SAMPLE = ld(2, b"\x09" + struct.pack("<d", 2.5) + b"\x10" + varint(-7))


@pytest.mark.parametrize(
    ("body", "keys", "samples"),
    [
        # labels and samples interleaved: only the labels make the key, in order
        (
            ld(1, LABEL + SAMPLE + ld(1, ld(1, b"a") + ld(2, b"b")) + SAMPLE),
            [LABEL + ld(1, ld(1, b"a") + ld(2, b"b"))],
            [(0, 2.5, -7), (0, 2.5, -7)],
        ),
        # missing value and timestamp read as 0; the last of repeated ones counts
        (
            ld(1, ld(2, b"") + ld(2, b"\x10\x05\x10\x06")),
            [b""],
            [(0, 0.0, 0), (0, 0.0, 6)],
        ),
        # unknown fields of every wire type at every level, some with multi-byte keys
        (
            b"\x18\x01"
            + ld(1, b"\x19" + b"\0" * 8 + LABEL + b"\xfd\x07\0\0\0\0" + SAMPLE)
            + ld(3, b"metadata")
            + b"\xa8\x1f\x96\x01",
            [LABEL],
            [(0, 2.5, -7)],
        ),
        # a known field number with a padded (multi-byte) key is skipped, as by remote_write
        (
            b"\x8a\x00" + varint(len(LABEL)) + LABEL + ld(1, b"\x8a\x00\x00" + SAMPLE),
            [b""],
            [(0, 2.5, -7)],
        ),
        # padded lengths are kept verbatim in the key
        (
            ld(1, b"\x0a" + padded(len(LABEL) - 2, 3) + LABEL[2:]),
            [b"\x0a" + padded(len(LABEL) - 2, 3) + LABEL[2:]],
            [],
        ),
        # a ten-byte timestamp: -1; series without samples still count
        (
            ld(1, b"") + ld(1, ld(2, b"\x10" + b"\xff" * 9 + b"\x01")),
            [b"", b""],
            [(1, 0.0, -1)],
        ),
    ],
)
def test_known_bodies(
    scan: Scanner, body: bytes, keys: list[bytes], samples: list[tuple[int, float, int]]
) -> None:
    got_keys, owner, stamps, values = scan(body)
    assert got_keys == keys
    assert list(zip(owner.tolist(), values.tolist(), stamps.tolist(), strict=True)) == samples


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\x0a", id="series length missing"),
        pytest.param(b"\x0a\x05\x0a\x01", id="series past the end"),
        pytest.param(ld(1, b"\x12\x03\x09\0\0"), id="value cut short"),
        pytest.param(ld(1, b"\x12\x02\x10\x80"), id="timestamp past its sample"),
        pytest.param(ld(1, b"\x12\x01\x10") + b"\x18\x01", id="timestamp reading on"),
        pytest.param(ld(1, b"\x0a\x02\x0a\x05"), id="label field past its label"),
        pytest.param(ld(1, b"\x0a\x01\x0b"), id="wire type 3 in a label"),
        pytest.param(b"\x0c", id="wire type 4"),
        pytest.param(ld(1, b"\x0e"), id="wire type 6"),
        pytest.param(ld(1, ld(2, b"\x0f")), id="wire type 7"),
        pytest.param(b"\x08" + b"\xff" * 10 + b"\x01", id="eleven-byte varint"),
        pytest.param(b"\x80" * 11, id="eleven-byte key"),
        pytest.param(b"\x0a" + b"\xff" * 9 + b"\x7f", id="length past 64 bits"),
        pytest.param(b"\x0a" + b"\x80" * 9 + b"\x02", id="length of exactly 2**64"),
        pytest.param(b"\x09" + b"\0" * 7, id="fixed64 past the end"),
        pytest.param(ld(1, b"\x0d\0\0\0"), id="fixed32 past its series"),
        pytest.param(ld(1, b"\x90\x01"), id="multi-byte key, varint missing"),
        pytest.param(ld(1, b"\x92") + b"\x01\x00", id="key varint past its series"),
    ],
)
def test_malformed_bodies(scan: Scanner, body: bytes) -> None:
    with pytest.raises(MalformedWriteRequest) as caught:
        scan(body)
    assert isinstance(caught.value, ValueError) and str(caught.value)


def test_interleaved_labels_in_series_of_growing_size(scan: Scanner) -> None:
    """Labels split by samples are gathered into one key; series grow so that the space
    they are gathered in must too."""
    body, keys, rows = b"", [], []
    for i in range(400):
        first = ld(1, ld(1, b"__name__") + ld(2, b"m" * i))
        second = ld(1, ld(1, b"k") + ld(2, bytes([97 + i % 26]) * (3 * i)))
        point = ld(2, b"\x09" + struct.pack("<d", i) + b"\x10" + varint(-i))
        order = [point, first, point, second, point] if i % 2 else [first, point, second]
        body += ld(1, b"".join(order))
        keys.append(first + second)
        rows += [(i, float(i), -i)] * order.count(point)
    got, owner, stamps, values = scan(body)
    assert got == keys
    assert list(zip(owner.tolist(), values.tolist(), stamps.tolist(), strict=True)) == rows


def test_label_text_is_left_to_decode_labels(scan: Scanner) -> None:
    body = ld(1, ld(1, ld(1, b"\xff") + ld(2, b"v")) + ld(1, b"\x1a\x00"))
    keys, _, _, _ = scan(body)
    assert keys == [ld(1, ld(1, b"\xff") + ld(2, b"v")) + ld(1, b"\x1a\x00")]
    with pytest.raises(MalformedWriteRequest, match="UTF-8"):
        decode_labels(keys[0])


@pytest.mark.parametrize(
    ("key", "pairs"),
    [
        (b"", []),
        (ld(1, b""), [("", "")]),
        (ld(1, ld(2, "é".encode()) + ld(1, b"a") + ld(1, b"b") + b"\x18\x01"), [("b", "é")]),
        (ld(1, ld(1, b"x")) + ld(1, ld(1, b"x") + ld(2, b"2")), [("x", ""), ("x", "2")]),
    ],
)
def test_decode_labels(key: bytes, pairs: list[tuple[str, str]]) -> None:
    assert decode_labels(key) == pairs


@pytest.mark.parametrize(
    "key",
    [
        b"\x12\x00",
        ld(1, b"\x0a\x03ab"),
        b"\x0a",
        ld(1, ld(2, b"\xc3")),
        ld(1, b"\x0b"),
        # a name that is not UTF-8 refuses the label even when a later name replaces it
        ld(1, ld(1, b"\x80") + ld(1, b"ok")),
    ],
)
def test_decode_labels_refuses(key: bytes) -> None:
    with pytest.raises(MalformedWriteRequest):
        decode_labels(key)


# --- generated bodies with a model of their contents --------------------------------------


@dataclass
class Model:
    """What a generated body holds, written down while it is generated."""

    body: bytes
    keys: list[bytes] = field(default_factory=list)
    labels: list[list[tuple[bytes, bytes]]] = field(default_factory=list)
    utf8: list[bool] = field(default_factory=list)  # every name and value met, per series
    samples: list[tuple[int, bytes, int]] = field(default_factory=list)  # owner, value, ms


@st.composite
def varints(draw: st.DrawFn, value: int) -> bytes:
    """``value``'s varint, sometimes padded up to protobuf's ten bytes."""
    room = 10 - len(varint(value))
    return padded(value, draw(st.integers(0, room)) if room and draw(st.booleans()) else 0)


@st.composite
def unknown_fields(draw: st.DrawFn, taken: frozenset[int]) -> bytes:
    """A field the reader must skip: any number and wire type whose one-byte key is not
    one of ``taken``; a taken key in padded (multi-byte) form is skipped too."""
    number = draw(st.one_of(st.integers(1, 20), st.integers(1, (1 << 29) - 1)))
    wire = draw(st.sampled_from([0, 1, 2, 5]))
    key = number << 3 | wire
    encoded = draw(varints(key))
    if encoded in {bytes([k]) for k in taken}:
        encoded = padded(key, 1)
    if wire == 0:
        payload = draw(varints(draw(st.integers(0, MASK64))))
    elif wire == 1:
        payload = draw(st.binary(min_size=8, max_size=8))
    elif wire == 5:
        payload = draw(st.binary(min_size=4, max_size=4))
    else:
        data = draw(st.binary(max_size=12))
        payload = draw(varints(len(data))) + data
    return encoded + payload


def length_delimited(draw: st.DrawFn, key: int, payload: bytes) -> bytes:
    return bytes([key]) + draw(varints(len(payload))) + payload


@st.composite
def label_texts(draw: st.DrawFn, utf8: bool) -> bytes:
    text = draw(st.text(max_size=8)).encode()
    return text if utf8 else draw(st.one_of(st.just(text), st.binary(max_size=6)))


@st.composite
def labels(draw: st.DrawFn, utf8: bool) -> tuple[bytes, tuple[bytes, bytes], bool]:
    """A Label field (key 0x0A) of TimeSeries, its (name, value) and whether every name
    and value in it (replaced ones too) is UTF-8."""
    name = value = b""
    parts = []
    all_utf8 = True
    for kind in draw(st.lists(st.sampled_from(["name", "value", "other"]), max_size=4)):
        if kind == "other":
            parts.append(draw(unknown_fields(frozenset({0x0A, 0x12}))))
            continue
        text = draw(label_texts(utf8))
        all_utf8 = all_utf8 and not _not_utf8(text)
        parts.append(length_delimited(draw, 0x0A if kind == "name" else 0x12, text))
        if kind == "name":
            name = text
        else:
            value = text
    return length_delimited(draw, 0x0A, b"".join(parts)), (name, value), all_utf8


@st.composite
def samples(draw: st.DrawFn) -> tuple[bytes, tuple[bytes, int]]:
    """A Sample field (key 0x12) of TimeSeries and its (value bytes, timestamp)."""
    value, stamp = bytes(8), 0
    parts = []
    for kind in draw(st.lists(st.sampled_from(["value", "timestamp", "other"]), max_size=4)):
        if kind == "value":
            value = draw(
                st.one_of(
                    st.floats(allow_nan=True, allow_infinity=True).map(struct.Struct("<d").pack),
                    st.binary(min_size=8, max_size=8),
                )
            )
            parts.append(b"\x09" + value)
        elif kind == "timestamp":
            stamp = draw(INT64)
            parts.append(b"\x10" + draw(varints(stamp & MASK64)))
        else:
            parts.append(draw(unknown_fields(frozenset({0x09, 0x10}))))
    return length_delimited(draw, 0x12, b"".join(parts)), (value, stamp)


@st.composite
def write_requests(draw: st.DrawFn, utf8: bool = False) -> Model:
    model = Model(b"")
    parts = []
    for is_series in draw(st.lists(st.booleans(), max_size=6)):
        if not is_series:
            parts.append(draw(unknown_fields(frozenset({0x0A}))))
            continue
        index = len(model.keys)
        key, pairs, fields, all_utf8 = b"", [], [], True
        for kind in draw(st.lists(st.sampled_from(["label", "sample", "other"]), max_size=8)):
            if kind == "label":
                encoded, pair, text_ok = draw(labels(utf8))
                all_utf8 = all_utf8 and text_ok
                key += encoded
                pairs.append(pair)
            elif kind == "sample":
                encoded, (value, stamp) = draw(samples())
                model.samples.append((index, value, stamp))
            else:
                encoded = draw(unknown_fields(frozenset({0x0A, 0x12})))
            fields.append(encoded)
        model.keys.append(key)
        model.labels.append(pairs)
        model.utf8.append(all_utf8)
        parts.append(length_delimited(draw, 0x0A, b"".join(fields)))
    model.body = b"".join(parts)
    return model


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A generated body with a few bytes changed, inserted or cut."""
    body = bytearray(draw(write_requests()).body)
    for op, where, byte in draw(
        st.lists(
            st.tuples(
                st.sampled_from(["set", "insert", "delete", "truncate"]),
                st.integers(0, 1 << 16),
                st.sampled_from([0x00, 0x01, 0x02, 0x0A, 0x12, 0x7F, 0x80, 0xFF])
                | st.integers(0, 255),
            ),
            min_size=1,
            max_size=4,
        )
    ):
        at = where % (len(body) + 1)
        if op == "set" and at < len(body):
            body[at] = byte
        elif op == "insert":
            body.insert(at, byte)
        elif op == "delete" and at < len(body):
            del body[at]
        elif op == "truncate":
            del body[at:]
    return bytes(body)


hostile = st.one_of(mutated(), st.binary(max_size=64))


def as_rows(result: Scan) -> tuple[list[bytes], list[tuple[int, int, int]]]:
    """Comparable form: values by their bits, so NaNs (and their payloads) compare too."""
    keys, owner, stamps, values = result
    assert (owner.dtype, stamps.dtype, values.dtype) == (np.int32, np.int64, np.float64)
    assert len(owner) == len(stamps) == len(values)
    rows = zip(owner.tolist(), values.view(np.uint64).tolist(), stamps.tolist(), strict=True)
    return keys, list(rows)


def outcome(scan: Scanner, body: bytes) -> object:
    try:
        return as_rows(scan(body))
    except MalformedWriteRequest as exc:
        assert str(exc)
        return MalformedWriteRequest


@PROPERTY
@given(model=write_requests())
def test_generated_bodies_match_their_model(model: Model) -> None:
    for scan in implementations():
        keys, rows = as_rows(scan(model.body))
        assert keys == model.keys
        assert rows == [
            (owner, struct.unpack("<Q", value)[0], stamp) for owner, value, stamp in model.samples
        ]
        for key, pairs, utf8 in zip(keys, model.labels, model.utf8, strict=True):
            if utf8:
                assert decode_labels(key) == [(n.decode(), v.decode()) for n, v in pairs]
            else:
                with pytest.raises(MalformedWriteRequest, match="UTF-8"):
                    decode_labels(key)


def _not_utf8(text: bytes) -> bool:
    try:
        text.decode()
    except UnicodeDecodeError:
        return True
    return False


@PROPERTY
@given(body=hostile)
def test_compiled_and_python_agree_on_hostile_bytes(body: bytes) -> None:
    assert outcome(compiled_scan(), body) == outcome(rwscan.scan_python, body)


@PROPERTY
@given(body=hostile)
def test_python_twin_alone_never_crashes(body: bytes) -> None:
    """Without the compiled module the twin is all there is: only its own error escapes."""
    outcome(rwscan.scan_python, body)
