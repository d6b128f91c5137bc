"""The Python evaluation of a search (what the live tail filters with) admits exactly the
lines the store finds, on both backends, and filters levels, services and labels alike."""

from __future__ import annotations

import pytest

from services.metrics.logs import reads
from services.metrics.logs.store import LogStore
from shared.commands import SearchLogs
from shared.logmatch import LineFilter
from tests.logs.conftest import batch, lines

MESSAGES = (
    "connection refused by db-1",
    "Connection reset by peer",
    "refused connection to cache",
    "disk full on db-2",
    "user 42 logged in",
    "payment declined: card expired",
    "Überlauf im Puffer: connection connection refused",
)
QUERIES = (
    "connection",
    "CONNECTION refused",
    '"connection refused"',
    '"refused connection"',
    '"connection connection refused"',
    "db",
    "db-1",
    "connection OR disk",
    "connection AND NOT refused",
    "connection -refused",
    "-connection",
    "NOT (connection OR db)",
    "(disk OR user) 42",
    "payment OR -connection",
    "expired AND (card OR -payment)",
    "überlauf",
    "refus",
    "conn*",
)


@pytest.mark.parametrize("q", QUERIES)
async def test_the_evaluator_admits_what_the_store_finds(log_store: LogStore, q: str) -> None:
    await log_store.store_sequenced([(1, batch(lines(*MESSAGES)))])
    page = await reads.search(log_store, SearchLogs(q=q))
    stored = {e["message"] for e in page["entries"]}
    line_filter = LineFilter.of(q=q)
    admitted = {m for m in MESSAGES if line_filter.admits({"message": m})}
    assert admitted == stored


def test_levels_services_and_labels_are_matched_as_a_search_does() -> None:
    line = {
        "message": "db timeout",
        "level": "error",
        "service": "api",
        "labels": {"host": "web-1", "zone": "a"},
    }
    assert LineFilter.of().admits(line)
    assert LineFilter.of(levels=["warn", "error"]).admits(line)
    assert not LineFilter.of(levels=["warn"]).admits(line)
    assert LineFilter.of(services=["web", "api"]).admits(line)
    assert not LineFilter.of(services=["web"]).admits(line)
    assert LineFilter.of(labels={"host": "web-1"}).admits(line)
    assert not LineFilter.of(labels={"host": "web-1", "zone": "b"}).admits(line)
    assert not LineFilter.of(labels={"rack": ""}).admits(line)  # absent is not empty, as stored
    assert LineFilter.of(levels=["error"], services=["api"], q="timeout").admits(line)
    assert not LineFilter.of(levels=["error"], services=["api"], q="-timeout").admits(line)
