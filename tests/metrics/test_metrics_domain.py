"""Pure rules: sample times, canonical labels, and which rows a query keeps."""

from __future__ import annotations

from services.metrics.domain import (
    newest_window,
    retention_window,
    sample_public,
    timestamp_ms,
)
from shared.events import Sample, canonical_labels


def test_a_sample_without_timestamp_takes_the_batch_received_time_in_ms() -> None:
    unstamped = Sample(name="cpu", value=1, timestamp=None, labels={})
    assert timestamp_ms(unstamped, 1000.5) == 1_000_500
    stamped = Sample(name="cpu", value=1, timestamp=900.0004, labels={})
    assert timestamp_ms(stamped, 1000.5) == 900_000


def test_equal_label_sets_give_equal_text_whatever_the_order() -> None:
    assert canonical_labels({"b": "2", "a": "1"}) == canonical_labels({"a": "1", "b": "2"})
    assert canonical_labels({"b": "2", "a": "1"}) == '{"a":"1","b":"2"}'


def test_window_keeps_the_newest_rows_oldest_first_and_says_it_truncated() -> None:
    newest_first = [("m", "{}", float(ts), 0.0) for ts in (5, 4, 3)]
    window = newest_window(newest_first, limit=2)
    assert [row[2] for row in window.rows] == [4.0, 5.0]
    assert window.truncated is True
    assert newest_window(newest_first[:2], limit=2).truncated is False


def test_public_sample_shape() -> None:
    row = ("cpu", '{"host":"a"}', 10.0, 1.5)
    assert sample_public(row) == {
        "name": "cpu",
        "value": 1.5,
        "timestamp": 10.0,
        "labels": {"host": "a"},
    }


def test_retention_keeps_from_now_minus_retention_to_the_allowed_future() -> None:
    assert retention_window(now=10_000.0, retention_s=3600.0) == (6400.0, 10_300.0)
