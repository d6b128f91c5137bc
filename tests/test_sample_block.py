"""The columnar sample event: what it carries, what a consumer refuses."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.events import (
    Sample,
    SampleBlock,
    SamplesIngested,
    UndecodableEvent,
    canonical_labels,
    decode_event,
    series_key,
    series_labels,
)

RECEIVED = 1_700_000_000.0


def block(samples: list[Sample]) -> SampleBlock:
    return SampleBlock.of_samples(samples, RECEIVED, aggregate_id="api")


def test_a_block_round_trips_through_its_bytes() -> None:
    samples = [
        Sample(name="up", value=1.0, timestamp=RECEIVED - 10, labels={"job": "api"}),
        Sample(name="load", value=0.25, timestamp=RECEIVED - 5, labels={}),
        Sample(name="up", value=0.0, timestamp=RECEIVED, labels={"job": "api"}),
    ]
    sent = block(samples)
    got = decode_event(sent.encode())
    assert isinstance(got, SampleBlock)
    assert (got.id, got.count, got.names) == (sent.id, 3, ["up", "load"])
    assert got.all_samples() == samples
    assert got.series.tolist() == [0, 1, 0]


def test_an_untimed_sample_takes_the_arrival_time() -> None:
    got = block([Sample(name="up", value=1.0, timestamp=None, labels={})])
    assert got.ts_ms.tolist() == [RECEIVED * 1000]


def test_watched_yields_only_the_named_metrics_with_their_place_in_the_block() -> None:
    samples = [
        Sample(name=name, value=float(i), timestamp=RECEIVED, labels={"i": str(i)})
        for i, name in enumerate(["a", "b", "a", "c", "b"])
    ]
    decoded = decode_event(block(samples).encode())
    assert isinstance(decoded, SampleBlock)
    assert [(i, s["value"]) for i, s in decoded.watched({"b"})] == [(1, 1.0), (4, 4.0)]
    assert list(decoded.watched({"zzz"})) == []
    # the JSON batch answers the same
    json_batch = SamplesIngested(aggregate_id="api", samples=samples, received_at=RECEIVED)
    assert list(json_batch.watched({"b"})) == list(decoded.watched({"b"}))


def payload(
    names: list[str], labels: list[str], ts: list[int], values: list[float], series: list[int]
) -> bytes:
    head = SampleBlock.of_columns(
        names,
        labels,
        np.array(
            [series_key(n, lj) for n, lj in zip(names, labels, strict=False)], dtype=np.uint64
        ),
        np.array(series),
        np.array(ts),
        np.array(values),
        aggregate_id="api",
        received_at=RECEIVED,
    ).encode()
    return head


def repack(body: bytes, change: Callable[[bytes], bytes]) -> bytes:
    return SampleBlock._pack(change(SampleBlock._unpack(body)))


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            repack(payload(["up"], ["{}"], [1], [1.0], [0]), lambda inner: inner[:-1]),
            "column bytes",
        ),
        (payload(["up"], ["{}"], [1], [1.0], [1]), "past the list"),
        (payload(["up"], ["{}"], [1], [math.nan], [0]), "NaN or infinite"),
        (payload(["up"], ["{}"], [1], [math.inf], [0]), "NaN or infinite"),
        (
            repack(
                payload(["up"], ["{}"], [1], [1.0], [0]),
                lambda i: i.replace(b'"count":1', b'"count":-1'),
            ),
            "invalid SampleBlock",
        ),
        (SampleBlock._pack(b'{"type":"SampleBlock"}'), "fewer than three JSON lines"),
        (b'{"type":"SampleBlock"}', "no LZ4 size"),
        (b'{"type":"SampleBlock","lz4":99999999999}\n', "out of bounds"),
        (b'{"type":"SampleBlock","lz4":100}\nnot lz4 at all', "LZ4"),
    ],
)
def test_a_malformed_block_is_undecodable(body: bytes, says: str) -> None:
    with pytest.raises(UndecodableEvent, match=says):
        decode_event(body)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda i: i.replace(b'\n["up"]\n', b"\n[7]\n"), "names must be a list of 1 strings"),
        (lambda i: i.replace(b'\n["up"]\n', b'\n["up","x"]\n'), "names must be a list of 1"),
        (lambda i: i.replace(b'\n["{}"]\n', b'\n{"a":1}\n'), "labels must be a list of 1"),
        (lambda i: i.replace(b'\n["{}"]\n', b"\n[\n"), "labels not JSON"),
    ],
)
def test_series_lists_are_checked_when_a_consumer_reads_them(
    change: Callable[[bytes], bytes], says: str
) -> None:
    """The store reads names and labels only of series it lacks, so a block whose lists
    are broken decodes; reading them is what fails, inside the consumer."""
    decoded = decode_event(repack(payload(["up"], ["{}"], [1], [1.0], [0]), change))
    assert isinstance(decoded, SampleBlock)
    with pytest.raises(UndecodableEvent, match=says):
        decoded.all_samples()


@pytest.mark.parametrize(
    "labels_json",
    [
        '{"b":"1","a":"2"}',  # not sorted: two spellings of one series
        '{"__reserved":"x"}',
        '{"a":"line\\nbreak"}',
        '{"a":1}',
        "[]",
        "{" + ",".join(f'"l{i:02d}":"v"' for i in range(65)) + "}",
        "not json",
    ],
)
def test_series_labels_hold_the_bounds_of_a_sample(labels_json: str) -> None:
    with pytest.raises(UndecodableEvent):
        series_labels("up", labels_json)


@pytest.mark.parametrize("name", ["", "1up", "up-time", "x" * 201, "up\n"])
def test_series_names_hold_the_bounds_of_a_sample(name: str) -> None:
    with pytest.raises(UndecodableEvent, match="metric name"):
        series_labels(name, "{}")
    decoded = decode_event(payload([name], ["{}"], [1], [1.0], [0]))
    assert isinstance(decoded, SampleBlock)
    with pytest.raises(UndecodableEvent, match="metric name"):
        decoded.all_samples()


label_maps = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12),
    max_size=5,
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["up", "cpu", "http_requests_total"]),
            label_maps,
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(min_value=-(10**12), max_value=10**12),
        ),
        max_size=40,
    )
)
def test_any_batch_of_samples_survives_the_columns(
    rows: list[tuple[str, dict[str, str], float, int]],
) -> None:
    samples = [
        Sample(name=name, value=value, timestamp=ms / 1000, labels=labels)
        for name, labels, value, ms in rows
    ]
    decoded = decode_event(block(samples).encode())
    assert isinstance(decoded, SampleBlock)
    assert decoded.all_samples() == samples
    assert len(set(zip(decoded.names, decoded.labels, strict=True))) == len(decoded.names)
    for name, labels_json in zip(decoded.names, decoded.labels, strict=True):
        assert canonical_labels(series_labels(name, labels_json)) == labels_json
