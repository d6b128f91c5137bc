"""The samples store: one DuckDB file of time-partitioned columnar tables.

Samples land in ``hot_<block>`` tables in the same transaction as the stream checkpoint,
so a redelivered batch is a no-op and a restart resumes right after the checkpoint.
Once a block is older than its end plus a grace period it is compacted: its samples are
rewritten sorted by (series_id, ts) into ``raw_<block>`` (which is what lets DuckDB's
bit-packing, RLE and ALP bring a sample to a few bytes) and its 1 m / 5 m / 1 h rollups
are appended to the rollup partitions. Retention drops whole tables; DuckDB reuses the
freed blocks of the file after the next checkpoint.

Everything here blocks: ``services.metrics.store.MetricsStore`` runs it in worker threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from services.metrics import layout, sketch
from services.metrics.buckets import BucketCache
from services.metrics.domain import retention_window, timestamp_ms
from services.metrics.layout import ROLLUPS, ROLLUPS_AT_COMPACTION, ROLLUPS_AT_EXPIRY
from services.metrics.series_index import SeriesIndex, SeriesInfo, series_info
from services.metrics.settings import MetricsSettings
from shared.events import SampleBatch, SampleBlock, canonical_labels, series_labels

log = logging.getLogger(__name__)


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS metrics_series "
    "(id UINTEGER NOT NULL, name VARCHAR NOT NULL, labels VARCHAR NOT NULL)",
    "CREATE TABLE IF NOT EXISTS metrics_state "
    "(last_seq BIGINT NOT NULL, stored BIGINT NOT NULL, block_ms BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS metrics_blocks "
    "(start_ms BIGINT NOT NULL, through_seq BIGINT NOT NULL)",
)
BUCKET_CACHE_BYTES = 64 * 1024 * 1024
"""Memory for the 1 m / 5 m buckets made from compacted blocks (``BucketCache``): a
day of 1 m buckets of 100 series takes ~8 MB."""
SAMPLE_COLUMNS = "series_id UINTEGER NOT NULL, ts BIGINT NOT NULL, value DOUBLE NOT NULL"
BLOCK_COLUMNS = "series_id UINTEGER NOT NULL, dt INTEGER NOT NULL, value DOUBLE NOT NULL"
"""A compacted block stores each timestamp as its distance to the series' previous one
(the first: to the block's start). Regular scrapes make that column constant, which
DuckDB stores in next to nothing, where absolute timestamps would cost ~3 bytes each."""
ROLLUP_COLUMNS = (
    "series_id UINTEGER NOT NULL, bucket BIGINT NOT NULL, v_min DOUBLE, v_max DOUBLE, "
    "v_sum DOUBLE, v_count UBIGINT, v_last DOUBLE, last_ts BIGINT, "
    "sketch_keys INTEGER[], sketch_counts UBIGINT[]"
)


def decoded_sql(start: int) -> str:
    """The samples of compacted block ``start`` with absolute timestamps (a window over
    the block: for compaction and retention, not for queries, which decode in numpy)."""
    return (
        f"(SELECT series_id, {start} + sum(dt) OVER (PARTITION BY series_id ORDER BY rowid "
        f"ROWS UNBOUNDED PRECEDING) AS ts, value FROM {layout.raw_table(start)})"
    )


def encode_sql(source: str, start: int) -> str:
    """Rows of a compacted block from ``source`` (series_id, ts, value), sorted."""
    return (
        f"SELECT series_id, CAST(ts - coalesce(lag(ts) OVER w, {start}) AS INTEGER) AS dt, value "
        f"FROM {source} WINDOW w AS (PARTITION BY series_id ORDER BY ts) ORDER BY series_id, ts"
    )


def rollup_sql(source: str, bucket_ms: int, with_sketch: bool = True) -> str:
    """Rollup rows of ``source`` (series_id, ts, value). With the sketch, the per-key
    counts come from an inner grouping and the other aggregates merge its partials;
    without it (the PromQL source never needs it) one grouping does."""
    if not with_sketch:
        return (
            f"SELECT series_id, ts - ts % {bucket_ms} AS bucket, min(value) AS v_min, "
            "max(value) AS v_max, sum(value) AS v_sum, count(*) AS v_count, "
            "arg_max(value, ts) AS v_last, max(ts) AS last_ts, "
            "NULL::INTEGER[] AS sketch_keys, NULL::UBIGINT[] AS sketch_counts "
            f"FROM {source} GROUP BY ALL"
        )
    key = sketch.key_sql("value")
    return (
        "SELECT series_id, bucket, min(lo) AS v_min, max(hi) AS v_max, sum(total) AS v_sum, "
        "sum(n) AS v_count, arg_max(latest, latest_ts) AS v_last, max(latest_ts) AS last_ts, "
        "list(k ORDER BY k) FILTER (WHERE k IS NOT NULL) AS sketch_keys, "
        "list(n ORDER BY k) FILTER (WHERE k IS NOT NULL) AS sketch_counts "
        f"FROM (SELECT series_id, ts - ts % {bucket_ms} AS bucket, {key} AS k, "
        "min(value) AS lo, max(value) AS hi, sum(value) AS total, count(*) AS n, "
        "arg_max(value, ts) AS latest, max(ts) AS latest_ts "
        f"FROM {source} GROUP BY ALL) GROUP BY ALL"
    )


@dataclass
class Tables:
    """Which data tables exist: a consistent copy is taken for every read."""

    hot: set[int] = field(default_factory=set)
    raw: dict[int, int] = field(default_factory=dict)  # block start -> through_seq
    rollups: dict[str, set[int]] = field(default_factory=lambda: {r.name: set() for r in ROLLUPS})

    def copy(self) -> Tables:
        return Tables(set(self.hot), dict(self.raw), {k: set(v) for k, v in self.rollups.items()})


@dataclass(frozen=True)
class Retention:
    """How long each resolution is kept, in milliseconds."""

    raw_ms: int
    rollup_ms: dict[str, int]

    @classmethod
    def of(cls, raw_retention_s: float, tuning: MetricsSettings) -> Retention:
        return cls(
            int(raw_retention_s * 1000),
            {
                "1m": int(tuning.retention_1m_s * 1000),
                "5m": int(tuning.retention_5m_s * 1000),
                "1h": int(tuning.retention_1h_s * 1000),
            },
        )

    def oldest(self, resolution: str | None, now_ms: int) -> int:
        """The oldest timestamp a resolution (None: raw) still holds."""
        kept = self.raw_ms if resolution is None else self.rollup_ms[resolution]
        return now_ms - kept


class ColumnStore:
    """The synchronous store. Writes come from one thread at a time (``MetricsStore``
    guarantees it); reads may come from any thread through ``reader()``."""

    def __init__(self, path: Path, tuning: MetricsSettings, raw_retention_s: float):
        self.path = path
        self.block_ms = int(tuning.block_s * 1000)
        self.grace_ms = int(tuning.compaction_grace_s * 1000)
        self.retention = Retention.of(raw_retention_s, tuning)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = duckdb.connect(
            str(path),
            config={"memory_limit": tuning.memory_limit, "threads": tuning.threads},
        )
        self._readers = self.conn.cursor()
        self.index = SeriesIndex()
        self.bucket_cache = BucketCache(BUCKET_CACHE_BYTES)
        # Bumped after every commit that changes a rollup table: the key under which
        # stored rollup rows are cached.
        self.rollup_writes = 0
        self._tables = Tables()
        self._tables_lock = threading.Lock()
        self._cursor_lock = threading.Lock()
        self.last_seq = 0
        self.stored = 0
        self._open()

    # --- opening -------------------------------------------------------------

    def _open(self) -> None:
        for statement in SCHEMA:
            self.conn.execute(statement)
        if self.conn.execute("SELECT count(*) FROM metrics_state").fetchone() == (0,):
            self.conn.execute("INSERT INTO metrics_state VALUES (0, 0, $1)", [self.block_ms])
        last_seq, stored, block_ms = self._one(
            "SELECT last_seq, stored, block_ms FROM metrics_state"
        )
        self.last_seq, self.stored = int(last_seq), int(stored)
        if int(block_ms) != self.block_ms:
            # the file's tables are cut at its own block size: it stays
            log.warning(
                "the metrics store keeps the block size it was made with",
                extra={"block_ms": int(block_ms), "setting_ms": self.block_ms},
            )
            self.block_ms = int(block_ms)
        rows = self.conn.execute("SELECT id, name, labels FROM metrics_series").fetchall()
        self.index.add(series_info(int(i), n, labels) for i, n, labels in rows)
        tables = Tables()
        through = dict(
            self.conn.execute("SELECT start_ms, through_seq FROM metrics_blocks").fetchall()
        )
        for (name,) in self.conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
        ).fetchall():
            parsed = layout.parse_table(name)
            if parsed is None:
                continue
            kind, start = parsed
            if kind == "hot":
                tables.hot.add(start)
            elif kind == "raw":
                tables.raw[start] = int(through.get(start, 0))
            else:
                tables.rollups[kind].add(start)
        self._tables = tables
        self._refresh_spans()

    def _one(self, sql: str, params: Sequence[object] | None = None) -> tuple[Any, ...]:
        row = self.conn.execute(sql, params).fetchone()
        if row is None:
            raise RuntimeError(f"no row from {sql}")
        return tuple(row)

    def tables(self) -> Tables:
        with self._tables_lock:
            return self._tables.copy()

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own for one read (closed by the caller). Made from a
        connection that runs no query, so the writer thread is never touched."""
        with self._cursor_lock:
            return self._readers.cursor()

    def close(self) -> None:
        self._readers.close()
        self.conn.close()

    # --- writes --------------------------------------------------------------

    def store_sequenced(self, batches: Sequence[tuple[int, SampleBatch]]) -> bool:
        """Store the batches above the checkpoint and move the checkpoint to the highest
        sequence, in one transaction; False when every batch was applied before.

        A sample whose block was compacted after its batch was applied (its sequence is
        at most the block's ``through_seq``) is skipped too: that matters when a rebuild
        replays the stream over kept blocks.
        """
        todo = [(seq, batch) for seq, batch in batches if seq > self.last_seq]
        if not todo:
            return False
        columns = _Columns(self.index)
        for seq, batch in todo:
            columns.add(seq, batch)
        new_series = columns.new_series
        ts_ms, ids_all, values_all, seq_array = columns.arrays()
        blocks = ts_ms - ts_ms % self.block_ms
        keep = np.ones(len(ts_ms), dtype=bool)
        tables = self.tables()
        for start in np.unique(blocks).tolist():
            through = tables.raw.get(start)
            if through is not None:
                keep &= ~((blocks == start) & (seq_array <= through))
        kept_ids = ids_all[keep]
        kept_ts = ts_ms[keep]
        incoming = {"series_id": kept_ids, "ts": kept_ts, "value": values_all[keep]}
        blocks = blocks[keep]
        touched = np.unique(blocks).tolist()
        last = max(seq for seq, _ in todo)
        stored = int(keep.sum())
        self.conn.execute("BEGIN TRANSACTION")
        try:
            if new_series:
                self.conn.execute(
                    "INSERT INTO metrics_series SELECT unnest($1), unnest($2), unnest($3)",
                    [
                        [s.id for s in new_series],
                        [s.name for s in new_series],
                        [s.labels_json for s in new_series],
                    ],
                )
            self.conn.register("incoming", incoming)
            try:
                for start in touched:
                    table = layout.hot_table(start)
                    self.conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({SAMPLE_COLUMNS})")
                    self.conn.execute(
                        f"INSERT INTO {table} SELECT series_id, ts, value FROM incoming "
                        f"WHERE ts >= {start} AND ts < {start + self.block_ms}"
                    )
            finally:
                self.conn.unregister("incoming")
            self.conn.execute(
                "UPDATE metrics_state SET last_seq = $1, stored = stored + $2", [last, stored]
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.last_seq = last
        self.stored += stored
        self.index.add(new_series)
        self.index.seen(*_spans(kept_ids, kept_ts))
        with self._tables_lock:
            self._tables.hot.update(touched)
        return True

    # --- compaction ----------------------------------------------------------

    def compact(self, now_s: float) -> int:
        """Compact every hot block that ended more than the grace period ago; returns how
        many samples were compacted."""
        now_ms = int(now_s * 1000)
        due = sorted(
            start for start in self.tables().hot if start + self.block_ms + self.grace_ms <= now_ms
        )
        moved = 0
        for start in due:
            moved += self._compact_block(start)
        if due:
            self.checkpoint()
        return moved

    def _compact_block(self, start: int) -> int:
        hot = layout.hot_table(start)
        raw = layout.raw_table(start)
        merged = start in self.tables().raw
        self.conn.execute("BEGIN TRANSACTION")
        try:
            (count,) = self._one(f"SELECT count(*) FROM {hot}")
            if merged:
                # late samples: rewrite the block so it stays sorted
                both = f"(SELECT * FROM {decoded_sql(start)} UNION ALL SELECT * FROM {hot})"
                self.conn.execute(
                    f"CREATE TABLE {raw}_merged ({BLOCK_COLUMNS}); "
                    f"INSERT INTO {raw}_merged {encode_sql(both, start)}; "
                    f"DROP TABLE {raw}; ALTER TABLE {raw}_merged RENAME TO {raw}"
                )
            else:
                self.conn.execute(
                    f"CREATE TABLE {raw} ({BLOCK_COLUMNS}); "
                    f"INSERT INTO {raw} {encode_sql(hot, start)}"
                )
            added: list[tuple[str, int]] = []
            for resolution in ROLLUPS_AT_COMPACTION:
                partition = resolution.partition(start)
                table = resolution.table(partition)
                self.conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({ROLLUP_COLUMNS})")
                self.conn.execute(
                    f"INSERT INTO {table} SELECT * FROM "
                    f"({rollup_sql(hot, resolution.bucket_ms)}) ORDER BY series_id, bucket"
                )
                added.append((resolution.name, partition))
            self.conn.execute(f"DROP TABLE {hot}")
            self.conn.execute("DELETE FROM metrics_blocks WHERE start_ms = $1", [start])
            self.conn.execute("INSERT INTO metrics_blocks VALUES ($1, $2)", [start, self.last_seq])
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        with self._tables_lock:
            self._tables.hot.discard(start)
            self._tables.raw[start] = self.last_seq
            for name, partition in added:
                self._tables.rollups[name].add(partition)
        self.rollup_writes += 1
        return int(count)

    # --- retention -----------------------------------------------------------

    def apply_retention(self, now_s: float) -> int:
        """Drop the blocks and rollup partitions wholly past their retention, and samples
        stamped too far in the future; returns how many samples went.

        Raw samples go a block at a time: a sample is kept until its whole block is past
        retention (at most one block longer than the setting).
        """
        now_ms = int(now_s * 1000)
        oldest_s, newest_s = retention_window(now_s, self.retention.raw_ms / 1000)
        oldest, newest = round(oldest_s * 1000), round(newest_s * 1000)
        tables = self.tables()
        dropped_raw = [s for s in tables.raw if s + self.block_ms <= oldest]
        dropped_hot = [s for s in tables.hot if s + self.block_ms <= oldest or s > newest]
        trimmed_hot = [s for s in tables.hot if s <= newest < s + self.block_ms]
        dropped_rollups = [
            (resolution, start)
            for resolution in ROLLUPS
            for start in tables.rollups[resolution.name]
            if start + resolution.partition_ms <= self.retention.oldest(resolution.name, now_ms)
        ]
        if not (dropped_raw or dropped_hot or trimmed_hot or dropped_rollups):
            return 0
        deleted = 0
        added: list[tuple[str, int]] = []
        self.conn.execute("BEGIN TRANSACTION")
        try:
            for start in dropped_raw:
                added += self._roll_up_expiring(start, now_ms)
                deleted += self._drop(layout.raw_table(start))
                self.conn.execute("DELETE FROM metrics_blocks WHERE start_ms = $1", [start])
            for start in dropped_hot:
                deleted += self._drop(layout.hot_table(start))
            for start in trimmed_hot:
                (gone,) = self._one(
                    f"DELETE FROM {layout.hot_table(start)} WHERE ts > $1", [newest]
                )
                deleted += int(gone)
            for resolution, start in dropped_rollups:
                self.conn.execute(f"DROP TABLE {resolution.table(start)}")
            self.conn.execute("UPDATE metrics_state SET stored = stored - $1", [deleted])
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.stored -= deleted
        with self._tables_lock:
            for start in dropped_raw:
                self._tables.raw.pop(start, None)
            self._tables.hot.difference_update(dropped_hot)
            for resolution, start in dropped_rollups:
                self._tables.rollups[resolution.name].discard(start)
            for name, partition in added:
                self._tables.rollups[name].add(partition)
        self.rollup_writes += 1
        self.checkpoint()  # frees the dropped tables' blocks for reuse
        self._refresh_spans()
        return deleted

    def _roll_up_expiring(self, start: int, now_ms: int) -> list[tuple[str, int]]:
        """The 1 m and 5 m rollups of a block leaving raw retention. Until then they are
        computed from its raw samples when asked for, which costs less than storing them."""
        added = []
        for resolution in ROLLUPS_AT_EXPIRY:
            partition = resolution.partition(start)
            if partition + resolution.partition_ms <= self.retention.oldest(
                resolution.name, now_ms
            ):
                continue  # would be dropped at once
            table = resolution.table(partition)
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({ROLLUP_COLUMNS})")
            self.conn.execute(
                f"INSERT INTO {table} SELECT * FROM "
                f"({rollup_sql(decoded_sql(start), resolution.bucket_ms)}) "
                "ORDER BY series_id, bucket"
            )
            added.append((resolution.name, partition))
        return added

    def checkpoint(self) -> None:
        """Write the WAL into the file, compressed, and free dropped tables' blocks. A
        reader's transaction may hold it off: then the next pass (or DuckDB's automatic
        checkpoint) does it."""
        try:
            self.conn.execute("CHECKPOINT")
        except duckdb.TransactionException as error:
            log.info("checkpoint put off", extra={"reason": str(error).splitlines()[0]})

    def _drop(self, table: str) -> int:
        (count,) = self._one(f"SELECT count(*) FROM {table}")
        self.conn.execute(f"DROP TABLE {table}")
        return int(count)

    def _refresh_spans(self) -> None:
        """Each series' first and last timestamp, from the 1 h rollups and the hot
        tables: small next to the raw blocks."""
        tables = self.tables()
        parts = [
            f"SELECT series_id, bucket AS first, last_ts AS last FROM {ROLLUPS[-1].table(p)}"
            for p in tables.rollups[ROLLUPS[-1].name]
        ]
        parts += [
            f"SELECT series_id, min(ts) AS first, max(ts) AS last FROM {layout.hot_table(s)} "
            "GROUP BY series_id"
            for s in tables.hot
        ]
        parts += [
            f"SELECT DISTINCT series_id, {s} AS first, {s + self.block_ms - 1} AS last "
            f"FROM {layout.raw_table(s)}"
            for s in tables.raw
            if ROLLUPS[-1].partition(s) not in tables.rollups[ROLLUPS[-1].name]
        ]
        spans: dict[int, tuple[int, int]] = {}
        if parts:
            union = " UNION ALL ".join(parts)
            rows = self.conn.execute(
                f"SELECT series_id, min(first), max(last) FROM ({union}) GROUP BY series_id"
            ).fetchall()
            spans = {int(i): (int(first), int(last)) for i, first, last in rows}
        self.index.reset_spans(spans)

    # --- rebuild -------------------------------------------------------------

    def reset_for_replay(self) -> None:
        """Forget the hot tables and the checkpoint, keeping the compacted blocks and the
        rollups: a replay of the stream then recreates exactly what was not compacted."""
        tables = self.tables()
        self.conn.execute("BEGIN TRANSACTION")
        try:
            for start in tables.hot:
                self.conn.execute(f"DROP TABLE {layout.hot_table(start)}")
            kept = 0
            for start in tables.raw:
                (count,) = self._one(f"SELECT count(*) FROM {layout.raw_table(start)}")
                kept += int(count)
            self.conn.execute("UPDATE metrics_state SET last_seq = 0, stored = $1", [kept])
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.last_seq, self.stored = 0, kept
        with self._tables_lock:
            self._tables.hot.clear()
        self.checkpoint()
        self._refresh_spans()


class _Columns:
    """The samples of many batches as columns of series ids, times, values and sequences,
    with the series first seen among them (ids assigned, not yet in the index)."""

    def __init__(self, index: SeriesIndex):
        self.index = index
        self.next_id = index.next_id
        self.new_series: list[SeriesInfo] = []
        self._pending: dict[tuple[str, str], int] = {}
        self._parts: list[tuple[Any, Any, Any, int]] = []

    def series_id(self, name: str, labels_json: str) -> int:
        series_id = self.index.id_of(name, labels_json)
        if series_id is None:
            series_id = self._pending.get((name, labels_json))
            if series_id is None:
                series_id = self._pending[(name, labels_json)] = self.next_id
                self.new_series.append(series_info(self.next_id, name, labels_json))
                self.next_id += 1
        return series_id

    def add(self, seq: int, batch: SampleBatch) -> None:
        if isinstance(batch, SampleBlock):
            ids = self.index.ids_of_keys(batch.keys)
            new = np.flatnonzero(ids < 0)
            if len(new):  # read names and labels only for series the index lacks
                names, labels = batch.names, batch.labels
                for i in new.tolist():
                    series_labels(names[i], labels[i])  # checked before it is stored
                    ids[i] = self.series_id(names[i], labels[i])
            self._parts.append(
                (ids.astype(np.uint32)[batch.series], batch.ts_ms, batch.values, seq)
            )
            return
        received_at = batch.received_at
        samples = batch.samples
        self._parts.append(
            (
                np.array(
                    [self.series_id(s["name"], canonical_labels(s["labels"])) for s in samples],
                    dtype=np.uint32,
                ),
                np.array([timestamp_ms(s, received_at) for s in samples], dtype=np.int64),
                np.array([s["value"] for s in samples], dtype=np.float64),
                seq,
            )
        )

    def arrays(self) -> tuple[Any, Any, Any, Any]:
        """(ts_ms, series ids, values, sequences) of every sample, in arrival order."""
        parts = self._parts
        return (
            np.concatenate([p[1] for p in parts]).astype(np.int64, copy=False),
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[2] for p in parts]).astype(np.float64, copy=False),
            np.concatenate([np.full(len(p[2]), p[3], dtype=np.int64) for p in parts]),
        )


def _spans(
    ids: np.ndarray[Any, Any], ts: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(series ids, first, last) of the distinct series in a batch."""
    if len(ids) == 0:
        return ids, ts, ts
    order = np.lexsort((ts, ids))
    ids, ts = ids[order], ts[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)] - 1
    return ids[starts], ts[starts], ts[ends]
