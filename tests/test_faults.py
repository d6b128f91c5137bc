"""Telling the surroundings' faults (disk, database, broker) from a message's own."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import nats.errors
import pytest
import sqlalchemy.exc
from nats.js.errors import APIError

from shared.errors import StreamFull, TransientDeliveryError
from shared.faults import FaultBoard, disk_state, environmental_cause


def sql_error(message: str) -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("INSERT", {}, sqlite3.OperationalError(message))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(errno.ENOSPC, "full"), "storage: No space left on device"),
        (OSError(errno.EROFS, "ro"), "storage: Read-only file system"),
        (sql_error("database or disk is full"), "database storage: database or disk is full"),
        (
            sql_error("attempt to write a readonly database"),
            "database storage: attempt to write a readonly database",
        ),
        (nats.errors.TimeoutError(), "event log not answering: TimeoutError"),
        (
            APIError(code=503, description="JetStream system temporarily unavailable"),
            "event log refuses writes: JetStream system temporarily unavailable",
        ),
        (StreamFull("stream ALERTS is full"), "event log refuses writes: stream ALERTS is full"),
    ],
)
def test_surroundings_faults_are_recognised(error: Exception, expected: str) -> None:
    assert environmental_cause(error) == expected


def test_a_cause_deep_in_the_chain_is_found() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "full")
        except OSError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as outer:
        assert environmental_cause(outer) == "storage: No space left on device"


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad sample"),
        sql_error("no such column: x"),
        APIError(code=400, err_code=10071, description="wrong last sequence"),
        TransientDeliveryError("HTTP 500"),
    ],
)
def test_the_messages_own_faults_are_not_blamed_on_the_surroundings(error: Exception) -> None:
    assert environmental_cause(error) is None


def test_a_judged_delivery_error_keeps_its_verdict_whatever_caused_it() -> None:
    try:
        try:
            raise TimeoutError
        except TimeoutError as inner:
            raise TransientDeliveryError("receiver timed out") from inner
    except TransientDeliveryError as outer:
        assert environmental_cause(outer) is None


def test_fault_board_reports_and_clears() -> None:
    board = FaultBoard()
    board.report("metrics-store", "x" * 1000)
    assert len(board.snapshot()["metrics-store"]) == 300
    board.clear("metrics-store")
    board.clear("never-reported")
    assert board.snapshot() == {}


def test_disk_state_of_a_real_directory(tmp_path: Path) -> None:
    state = disk_state(tmp_path)
    assert state is not None and state.writable
    assert 0 < state.free_bytes <= state.total_bytes
    assert disk_state(tmp_path / "missing") is None
