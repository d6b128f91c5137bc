"""Log queries on the store: a page of lines newest first, and counts per level over time.

Both take the same filter. With text, SQLite's FTS5 index drives the query when the text
can be said in FTS5 alone (it walks its matches in rowid order, which is time order, so
the newest page costs the page, not every match); otherwise each part of the text
becomes its own FTS5 lookup combined in SQL. PostgreSQL matches the tsvector column.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.sql.elements import TextClause

from services.metrics.logs import codec
from services.metrics.logs.store import LogStore
from services.metrics.logs.tables import ENTRIES, FTS
from services.metrics.logs.textsearch import fts5, tsquery
from shared.commands import LogFilter, LogHistogram, SearchLogs, check_log_buckets
from shared.errors import InvalidInput
from shared.logquery import And, Node, Not, Or, parse_query

COLUMNS = "e.id, e.level, e.labelset, e.us, e.message, e.fields, e.trace_id, e.span_id"
CURSOR_PREFIX = "v1:"
# label sets a filter may match and still be looked up in the index as tokens; beyond,
# each line's set is checked instead
MAX_MATCHED_SETS = 200


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith(CURSOR_PREFIX):
            raise ValueError(raw)
        return int(raw.removeprefix(CURSOR_PREFIX))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise InvalidInput(
            "cursor: not a cursor this server gave out (pass next_cursor as it came)",
            field="cursor",
        ) from None


@dataclass
class Where:
    """SQL conditions on the lines (alias ``e``) with their parameters."""

    sqlite: bool
    conditions: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    expanding: list[str] = field(default_factory=list)
    fts_driver: str | None = None  # FTS5 MATCH that drives the query (SQLite)

    def add(self, condition: str, **params: Any) -> None:
        self.conditions.append(condition)
        self.params.update(params)

    def clause(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "1 = 1"

    def statement(self, sql: str) -> TextClause:
        statement = text(sql)
        if self.expanding:
            statement = statement.bindparams(
                *(bindparam(n, expanding=True) for n in self.expanding)
            )
        return statement

    def text_condition(self, node: Node) -> str:
        """A condition on one line for a part of the query: the tsquery (PostgreSQL), or
        a lookup of that one rowid in the FTS5 index (SQLite), cheap per line checked."""
        name = f"q{len(self.params)}"
        if not self.sqlite:
            self.params[name] = tsquery(node)
            return f"e.tsv @@ to_tsquery('simple', :{name})"
        match = fts5(node)
        if match is not None:
            self.params[name] = f"message : {match}"
            return f"EXISTS (SELECT 1 FROM {FTS} WHERE {FTS} MATCH :{name} AND {FTS}.rowid = e.id)"
        if isinstance(node, Not):
            return f"NOT ({self.text_condition(node.child)})"
        joiner = " AND " if isinstance(node, And) else " OR "
        assert isinstance(node, And | Or)
        return "(" + joiner.join(self.text_condition(c) for c in node.children) + ")"


def build_where(store: LogStore, query: LogFilter, upper: int | None = None) -> Where | None:
    """The conditions of a filter; None when it can match nothing (no such label set)."""
    where = Where(store.sqlite)
    node = parse_query(query.q)
    sets = store.labelsets.matching(query.services, query.labels)
    if sets is not None and not sets:
        return None
    levels = sorted({codec.LEVEL_CODE[x] for x in query.levels})
    if store.sqlite:
        add_sqlite_filters(where, node, levels, sets)
    else:
        if node is not None:
            where.add(where.text_condition(node))
        if levels:
            where.add("e.level IN :levels", levels=levels)
            where.expanding.append("levels")
        if sets is not None:
            where.add("e.labelset IN :sets", sets=sets)
            where.expanding.append("sets")
    # constraints on the FTS5 rowid are applied by FTS5 itself while it walks its matches
    id_column = f"{FTS}.rowid" if where.fts_driver is not None else "e.id"
    if query.start is not None:
        where.add(f"{id_column} >= :lo", lo=codec.id_at(query.start))
    if query.end is not None:
        where.add(f"{id_column} < :hi", hi=codec.id_at(query.end))
    if upper is not None:
        where.add(f"{id_column} < :before", before=upper)
    return where


def add_sqlite_filters(
    where: Where, node: Node | None, levels: list[int], sets: list[int] | None
) -> None:
    """Text, levels and label sets as one FTS5 MATCH that drives the query where FTS5 can
    say them; the rest as conditions on each line."""
    parts: list[str] = []
    match = fts5(node) if node is not None else None
    if match is not None:
        parts.append(f"message : {match}")
    elif node is not None:
        where.add(where.text_condition(node))
    if levels:
        parts.append("meta : (" + " OR ".join(f"l{code}" for code in levels) + ")")
    if sets is not None and len(sets) <= MAX_MATCHED_SETS:
        parts.append("meta : (" + " OR ".join(f"s{labelset}" for labelset in sets) + ")")
    elif sets is not None:
        where.add("e.labelset IN :sets", sets=sets)
        where.expanding.append("sets")
    if parts:
        where.fts_driver = " AND ".join(f"({part})" for part in parts)
        where.conditions.insert(0, f"{FTS} MATCH :match")
        where.params["match"] = where.fts_driver


def source(where: Where) -> str:
    if where.fts_driver is not None:
        return f"{FTS} JOIN {ENTRIES} AS e ON e.id = {FTS}.rowid"
    return f"{ENTRIES} AS e"


def order_column(where: Where) -> str:
    return f"{FTS}.rowid" if where.fts_driver is not None else "e.id"


async def search(store: LogStore, query: SearchLogs) -> dict[str, Any]:
    """A page of lines, newest first; ``next_cursor`` continues after its last line."""
    upper = decode_cursor(query.cursor) if query.cursor else None
    where = build_where(store, query, upper)
    if where is None:
        return {"entries": [], "next_cursor": None}
    sql = (
        f"SELECT {COLUMNS} FROM {source(where)} WHERE {where.clause()} "
        f"ORDER BY {order_column(where)} DESC LIMIT :limit"
    )
    where.params["limit"] = query.limit + 1
    async with store.engine.connect() as conn:
        rows = (await conn.execute(where.statement(sql), where.params)).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return {
        "entries": [line_public(store, row) for row in rows],
        "next_cursor": encode_cursor(rows[-1].id) if more else None,
    }


def line_public(store: LogStore, row: Any) -> dict[str, Any]:
    labelset = store.labelsets.by_id.get(row.labelset)
    return {
        "timestamp": codec.joined_time(row.id, row.us),
        "level": codec.LEVELS[row.level],
        "message": store.coder.decode_message(row.message),
        "service": labelset.service if labelset else "",
        "labels": dict(labelset.labels) if labelset else {},
        "fields": store.coder.decode_fields(row.fields),
        "trace_id": codec.decode_hex(row.trace_id),
        "span_id": codec.decode_hex(row.span_id),
    }


async def histogram(store: LogStore, query: LogHistogram) -> dict[str, Any]:
    """Lines per level in each step from ``start`` (default an hour before ``end``, which
    defaults to now); every bucket is listed, empty ones with zeros."""
    end = query.end if query.end is not None else time.time()
    start = query.start if query.start is not None else end - 3600.0
    if end <= start:
        raise InvalidInput("end: must be after start", field="end")
    check_log_buckets(start, end, query.step)
    buckets = math.ceil((end - start) / query.step)
    bounded = query.model_copy(update={"start": start, "end": end})
    counts = [[0] * len(codec.LEVELS) for _ in range(buckets)]
    where = build_where(store, bounded)
    if where is not None:
        start_ms = math.floor(start * 1000)
        step_ms = max(1, round(query.step * 1000))
        where.params.update(start_ms=start_ms, step_ms=step_ms)
        column = order_column(where)
        sql = (
            f"SELECT (({column} >> {codec.ID_SHIFT}) - :start_ms) / :step_ms AS bucket, "
            f"e.level AS level, count(*) AS lines FROM {source(where)} WHERE {where.clause()} "
            "GROUP BY bucket, e.level"
        )
        async with store.engine.connect() as conn:
            for row in (await conn.execute(where.statement(sql), where.params)).all():
                if 0 <= row.bucket < buckets:
                    counts[int(row.bucket)][row.level] += int(row.lines)
    return {
        "start": start,
        "end": end,
        "step": query.step,
        "buckets": [
            {
                "time": start + index * query.step,
                "counts": dict(zip(codec.LEVELS, per_level, strict=True)),
                "total": sum(per_level),
            }
            for index, per_level in enumerate(counts)
        ],
    }
