"""A new SQLite connection waits out a file another connection holds for a moment.

SQLite answers "database is locked" at once, without its busy handler, to a connection
that opens a WAL file while another is recovering it or cleaning up on close; a
service starting right after a crashed one must not fail on that.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from shared import db


class BusyAtFirst:
    """A real connection whose first ``busy`` statements are answered as SQLite does while
    another connection recovers the file."""

    def __init__(self, path: Path, busy: int, message: str = "database is locked"):
        self.real = sqlite3.connect(path)
        self.busy = busy
        self.message = message

    def cursor(self) -> Any:
        outer = self

        class Cursor:
            def __init__(self) -> None:
                self.real = outer.real.cursor()

            def execute(self, sql: str) -> Any:
                if outer.busy:
                    outer.busy -= 1
                    raise sqlite3.OperationalError(outer.message)
                return self.real.execute(sql)

            def fetchone(self) -> Any:
                return self.real.fetchone()

            def close(self) -> None:
                self.real.close()

        return Cursor()


def test_a_briefly_locked_file_is_waited_for(tmp_path: Path) -> None:
    connection = BusyAtFirst(tmp_path / "a.db", busy=3)
    db._sqlite_pragmas(connection, None)
    assert connection.real.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.busy == 0


def test_a_file_locked_for_good_fails_in_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "CONNECT_BUSY_S", 0.2)
    connection = BusyAtFirst(tmp_path / "a.db", busy=10**6)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        db._sqlite_pragmas(connection, None)


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    connection = BusyAtFirst(tmp_path / "a.db", busy=1, message="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        db._sqlite_pragmas(connection, None)
    assert connection.busy == 0
