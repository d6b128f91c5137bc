"""The log store: lines of every ``LogsIngested`` batch, searchable, kept by level.

Written only by the ``logs-store`` consumer: a consumer batch of stream messages is one
SQL transaction that also moves the checkpoint, so a redelivered message is skipped and
a crash loses nothing committed. Read by the log queries (``reads``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.metrics.logs import codec
from services.metrics.logs.labelsets import LabelSet, LabelSets, encode_labels, set_key
from services.metrics.logs.tables import ENTRIES, FTS, FTS_DDL, SETS, log_tables, meta_tokens
from shared.db import ProjectionStore, is_sqlite
from shared.events.logs import LogEntry, LogsIngested
from shared.logquery import tokens
from shared.settings import Settings

log = logging.getLogger(__name__)

STORE_PROJECTION = "logs-store"
PROBE_CHUNK = 5_000  # milliseconds probed for their last id in one statement
RETENTION_CHUNK = 5_000  # lines deleted per transaction by the retention pass
MERGE_PAGES = 500  # index pages merged per transaction when merging the index whole
OPTIMIZE_SHARE = 0.1  # of the lines stored, deleted since the index was last merged whole
LEARN_SAMPLE = 5_000  # lines of one write looked at to learn the dictionary from


class LogStore:
    def __init__(self, engine: AsyncEngine, settings: Settings):
        self.engine = engine
        self.settings = settings
        self.sqlite = is_sqlite(engine)
        self.metadata, self.entries, self.sets, self.dicts = log_tables(postgres=not self.sqlite)
        self.coder = codec.Coder()
        self.projections = ProjectionStore(engine, self.metadata, "metrics")
        self.labelsets = LabelSets()
        self.max_id = 0  # the newest committed line's id: later milliseconds need no probe
        self.deleted_since_optimize = 0

    async def open(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(self.metadata.create_all)
            if self.sqlite:
                await conn.exec_driver_sql(FTS_DDL)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(self.sets))).all()
            self.max_id = int(await conn.scalar(select(func.max(self.entries.c.id))) or 0)
            for row in (await conn.execute(select(self.dicts))).all():
                self.coder.dictionaries.add(int(row.id), bytes(row.data))
        self.labelsets.add_all(
            (row.key, LabelSet(row.id, row.service, orjson.loads(row.labels))) for row in rows
        )

    async def close(self) -> None:
        await self.engine.dispose()

    async def last_seq(self) -> int:
        return await self.projections.last_seq(STORE_PROJECTION)

    async def store_sequenced(self, batches: Sequence[tuple[int, LogsIngested]]) -> bool:
        """Store the lines of every batch after the checkpoint; False if all were applied."""
        if not batches:
            return False
        added: list[tuple[str, LabelSet]] = []
        learned: list[tuple[int, bytes]] = []
        fresh_items: dict[tuple[str, ...], int] = {}
        newest = [0]

        async def change(conn: AsyncConnection, last: int) -> None:
            fresh = [(seq, batch) for seq, batch in batches if seq > last]
            lines = [(entry, batch.received_at) for _seq, batch in fresh for entry in batch.entries]
            if lines:
                newest[0] = await self._insert(conn, lines, added, learned, fresh_items)

        applied = await self.projections.apply_through(
            STORE_PROJECTION, max(seq for seq, _ in batches), change
        )
        if applied:
            self.labelsets.add_all(added)
            self.labelsets.by_items.update(fresh_items)
            for dict_id, data in learned:
                self.coder.dictionaries.add(dict_id, data)
            self.max_id = max(self.max_id, newest[0])
        return applied

    async def _insert(
        self,
        conn: AsyncConnection,
        lines: list[tuple[LogEntry, float]],
        added: list[tuple[str, LabelSet]],
        learned: list[tuple[int, bytes]],
        fresh_items: dict[tuple[str, ...], int],
    ) -> int:
        dict_id = await self._dictionary(conn, lines, learned)
        stamps = [
            codec.split_time(entry["timestamp"] if entry["timestamp"] is not None else received)
            for entry, received in lines
        ]
        next_n = await self._next_numbers(conn, {ms for ms, _ in stamps})
        pending: dict[str, int] = {}
        seen: dict[tuple[str, ...], int] = {}
        by_items = self.labelsets.by_items
        rows: list[tuple[Any, ...]] = []
        words: list[str] = []
        newest = 0
        for (entry, _received), (ms, us) in zip(lines, stamps, strict=True):
            n = next_n.get(ms, 0)
            while n >= codec.PER_MS:  # a millisecond is full: the line goes to the next one
                ms += 1
                if ms not in next_n:
                    next_n.update(await self._next_numbers(conn, {ms}))
                n = next_n.get(ms, 0)
            next_n[ms] = n + 1
            row_id = codec.first_id(ms) | n
            newest = max(newest, row_id)
            # label names hold no "=": the pairs joined cannot be mistaken for others
            items = (entry["service"], *(f"{k}={v}" for k, v in entry["labels"].items()))
            labelset = by_items.get(items) or seen.get(items)
            if labelset is None:
                labelset = await self._labelset(
                    conn, entry["service"], entry["labels"], pending, added
                )
                seen[items] = labelset
            message = entry["message"]
            rows.append(
                (
                    row_id,
                    codec.LEVEL_CODE[entry["level"]],
                    labelset,
                    us,
                    self.coder.encode_message(message, dict_id),
                    self.coder.encode_fields(entry["fields"], dict_id),
                    codec.encode_hex(entry["trace_id"]),
                    codec.encode_hex(entry["span_id"]),
                )
            )
            words.append(message if self.sqlite else " ".join(tokens(message)))
        columns = "id, level, labelset, us, message, fields, trace_id, span_id"
        if self.sqlite:
            await conn.exec_driver_sql(
                f"INSERT INTO {ENTRIES} ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            await conn.exec_driver_sql(
                f"INSERT INTO {FTS} (rowid, message, meta) VALUES (?, ?, ?)",
                [
                    (row[0], text_, meta_tokens(row[1], row[2]))
                    for row, text_ in zip(rows, words, strict=True)
                ],
            )
        else:
            await conn.exec_driver_sql(
                f"INSERT INTO {ENTRIES} ({columns}, tsv) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, to_tsvector('simple', %s))",
                [(*row, text_) for row, text_ in zip(rows, words, strict=True)],
            )
        fresh_items.update(seen)
        return newest

    async def _dictionary(
        self,
        conn: AsyncConnection,
        lines: list[tuple[LogEntry, float]],
        learned: list[tuple[int, bytes]],
    ) -> int | None:
        """The dictionary new lines are coded with; one learned from these lines (the
        first ones, or later a better one) is stored in the same transaction."""
        dictionaries = self.coder.dictionaries
        if not dictionaries.due(len(lines)):
            return dictionaries.current
        texts = [entry["message"].encode() for entry, _ in lines[:LEARN_SAMPLE]]
        texts += [orjson.dumps(e["fields"]) for e, _ in lines[:LEARN_SAMPLE] if e["fields"]]
        new = dictionaries.observe(texts)
        if new is None:
            return dictionaries.current
        dict_id, data = new
        await conn.execute(self.dicts.insert().values(id=dict_id, data=data))
        learned.append(new)
        dictionaries.by_id[dict_id] = data  # for this transaction's lines; current once committed
        return dict_id

    async def _next_numbers(self, conn: AsyncConnection, millis: set[int]) -> dict[int, int]:
        """For each millisecond that may hold lines already, the next free number in it."""
        late = sorted(ms for ms in millis if codec.first_id(ms) <= self.max_id)
        found: dict[int, int] = {}
        for start in range(0, len(late), PROBE_CHUNK):
            chunk = late[start : start + PROBE_CHUNK]
            if self.sqlite:
                values = ", ".join(["(?)"] * len(chunk))
                sql = (
                    f"WITH m(ms) AS (VALUES {values}) SELECT ms, (SELECT max(id) FROM {ENTRIES} "
                    f"WHERE id >= (ms << {codec.ID_SHIFT}) AND id < ((ms + 1) << "
                    f"{codec.ID_SHIFT})) FROM m"
                )
                result = await conn.exec_driver_sql(sql, tuple(chunk))
            else:
                sql = (
                    f"SELECT m.ms, (SELECT max(id) FROM {ENTRIES} WHERE id >= (m.ms << "
                    f"{codec.ID_SHIFT}) AND id < ((m.ms + 1) << {codec.ID_SHIFT})) "
                    "FROM unnest(%s::bigint[]) AS m(ms)"
                )
                result = await conn.exec_driver_sql(sql, (chunk,))
            rows: list[Any] = list(result.all())
            for row in rows:
                if row[1] is not None:
                    found[int(row[0])] = (int(row[1]) & (codec.PER_MS - 1)) + 1
        return found

    async def _labelset(
        self,
        conn: AsyncConnection,
        service: str,
        labels: dict[str, str],
        pending: dict[str, int],
        added: list[tuple[str, LabelSet]],
    ) -> int:
        key = set_key(service, labels)
        known = self.labelsets.by_key.get(key)
        if known is None:
            known = pending.get(key)
        if known is not None:
            return known
        encoded = encode_labels(labels)
        if self.sqlite:
            insert = f"INSERT INTO {SETS} (key, service, labels) VALUES (?, ?, ?) "
            params: tuple[Any, ...] = (key, service, encoded)
            lookup = f"SELECT id FROM {SETS} WHERE key = ?"
        else:
            insert = f"INSERT INTO {SETS} (key, service, labels) VALUES (%s, %s, %s) "
            params = (key, service, encoded)
            lookup = f"SELECT id FROM {SETS} WHERE key = %s"
        await conn.exec_driver_sql(insert + "ON CONFLICT (key) DO NOTHING", params)
        found = int((await conn.exec_driver_sql(lookup, (key,))).scalar_one())
        pending[key] = found
        added.append((key, LabelSet(found, service, dict(labels))))
        return found

    # --- retention ------------------------------------------------------------
    async def apply_retention(self, now: float | None = None) -> int:
        """Delete each level's lines past its retention; returns how many went.

        A chunk per transaction, so ingest waits at most one chunk for the writer. On
        SQLite the index entries go with their lines ('delete' needs each message's
        text: the index is contentless) and the freed pages are given back to the
        file system; PostgreSQL's autovacuum reuses its space.
        """
        clock = time.time() if now is None else now
        deleted = 0
        for level, code in codec.LEVEL_CODE.items():
            cutoff = codec.id_at(clock - self.settings.log_retention_s(level))
            while True:
                gone = await self._delete_chunk(code, cutoff)
                deleted += gone
                if gone < RETENTION_CHUNK:
                    break
        if deleted and self.sqlite:
            self.deleted_since_optimize += deleted
            if self.deleted_since_optimize >= OPTIMIZE_SHARE * await self.count():
                await self._optimize_index()
            await self._give_back_free_pages()
        return deleted

    async def _optimize_index(self) -> None:
        """Merge the FTS5 index down to one segment. A deleted line leaves a delete marker
        in the index until a merge reaches the segment holding it, so until then deleting
        grows the index; merged whole, it shrinks by what was deleted. Done as FTS5's
        'optimize' would (~10 s for 9 million lines) but a few hundred pages a transaction,
        so the consumer's writes go on in between; and only once a tenth of the lines
        went since the last time."""
        while True:
            async with self.engine.begin() as conn:
                before = int((await conn.exec_driver_sql("SELECT total_changes()")).scalar_one())
                await conn.exec_driver_sql(
                    f"INSERT INTO {FTS} ({FTS}, rank) VALUES ('merge', -{MERGE_PAGES})"
                )
                after = int((await conn.exec_driver_sql("SELECT total_changes()")).scalar_one())
            if after - before < 2:  # FTS5's sign that there was nothing left to merge
                break
            await asyncio.sleep(0)
        self.deleted_since_optimize = 0

    async def _give_back_free_pages(self) -> None:
        """Truncate the file by its free pages. Python's sqlite3 steps a statement once on
        execute, which frees one page of an incremental vacuum; a script runs it through."""
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.executescript("PRAGMA incremental_vacuum;")

    async def _delete_chunk(self, level: int, cutoff: int) -> int:
        async with self.engine.begin() as conn:
            if self.sqlite:
                # the level's lines oldest first, found by the index's level token
                rows = (
                    await conn.execute(
                        text(
                            f"SELECT e.id, e.labelset, e.message FROM {FTS} JOIN {ENTRIES} AS e "
                            f"ON e.id = {FTS}.rowid WHERE {FTS} MATCH :level "
                            f"AND {FTS}.rowid < :cutoff ORDER BY {FTS}.rowid LIMIT :n"
                        ),
                        {"level": f"meta : l{level}", "cutoff": cutoff, "n": RETENTION_CHUNK},
                    )
                ).all()
                if not rows:
                    return 0
                await conn.exec_driver_sql(
                    f"INSERT INTO {FTS} ({FTS}, rowid, message, meta) VALUES ('delete', ?, ?, ?)",
                    [
                        (
                            row.id,
                            self.coder.decode_message(row.message),
                            meta_tokens(level, row.labelset),
                        )
                        for row in rows
                    ],
                )
                await conn.execute(
                    text(f"DELETE FROM {ENTRIES} WHERE id IN :ids").bindparams(
                        bindparam("ids", expanding=True)
                    ),
                    {"ids": [row.id for row in rows]},
                )
                return len(rows)
            result = await conn.execute(
                text(
                    f"DELETE FROM {ENTRIES} WHERE id IN (SELECT id FROM {ENTRIES} "
                    "WHERE level = :level AND id < :cutoff ORDER BY level, id LIMIT :n)"
                ),
                {"level": level, "cutoff": cutoff, "n": RETENTION_CHUNK},
            )
            return int(result.rowcount or 0)

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(self.entries)) or 0)
