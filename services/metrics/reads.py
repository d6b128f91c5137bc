"""Reading the store: raw samples, rollup buckets, the sample list and aggregates.

Every read takes a copy of the table list, builds one query over the tables that hold
its time range, and runs on a cursor of its own. A compaction or retention pass may drop
a table between the copy and the query: the read is then simply tried again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import duckdb
import numpy as np
import numpy.typing as npt

from services.metrics import layout, sketch
from services.metrics.buckets import BucketRows
from services.metrics.columnar import ColumnStore, Tables, rollup_sql
from services.metrics.domain import SampleRow, SampleWindow, newest_window
from services.metrics.layout import ROLLUPS, Resolution
from shared.commands import QuerySamples

T = TypeVar("T")
ATTEMPTS = 5
FAR = 2**62

Aggregation = Literal["avg", "min", "max", "sum", "count", "last", "p50", "p90", "p99"]
AGGREGATIONS: tuple[str, ...] = ("avg", "min", "max", "sum", "count", "last", "p50", "p90", "p99")
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


def retrying(store: ColumnStore, read: Callable[[duckdb.DuckDBPyConnection, Tables], T]) -> T:
    """Run ``read`` on a fresh table list; again if a table it named was dropped."""
    for attempt in range(ATTEMPTS):
        cursor = store.reader()
        try:
            return read(cursor, store.tables())
        except duckdb.CatalogException:
            if attempt == ATTEMPTS - 1:
                raise
        finally:
            cursor.close()
    raise AssertionError("unreachable")


def _ids_filter(ids: Sequence[int] | None) -> str:
    return "" if ids is None else " AND series_id IN (SELECT unnest($ids::UINTEGER[]))"


def _params(sql: str, **params: object) -> dict[str, object]:
    """Only the parameters the statement names (DuckDB refuses others)."""
    return {key: value for key, value in params.items() if f"${key}" in sql}


# --- samples with their timestamps, from compacted and hot blocks ----------


@dataclass(frozen=True)
class Columns:
    """Points of many series, grouped by series (time order within a series is
    restored by ``split``)."""

    series_id: npt.NDArray[np.uint32]
    ts: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.series_id)

    def where(self, mask: npt.NDArray[np.bool_]) -> Columns:
        return Columns(self.series_id[mask], self.ts[mask], self.value[mask])

    def as_dict(self) -> dict[str, npt.NDArray[Any]]:
        return {"series_id": self.series_id, "ts": self.ts, "value": self.value}

    def split(self) -> dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
        """Arrays per series, oldest first; of equal timestamps the last stored is kept."""
        if len(self.series_id) == 0:
            return {}
        ids = self.series_id
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        ends = np.r_[starts[1:], len(ids)]
        out = {}
        for series_id, a, b in zip(
            ids[starts].tolist(), starts.tolist(), ends.tolist(), strict=True
        ):
            ts, values = self.ts[a:b], self.value[a:b]
            if len(ts) > 1 and not bool(np.all(ts[1:] > ts[:-1])):
                order = np.argsort(ts, kind="stable")
                ts, values = ts[order], values[order]
                last = np.r_[ts[1:] != ts[:-1], True]
                ts, values = ts[last], values[last]
            out[int(series_id)] = (ts, values)
        return out


EMPTY = Columns(
    np.empty(0, dtype=np.uint32), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
)


def _decoded(start: int, found: dict[str, Any]) -> Columns:
    """A compacted block's rows (sorted by series) with absolute timestamps: each
    series' distances summed from the block's start."""
    ids = np.asarray(found["series_id"], dtype=np.uint32)
    if len(ids) == 0:
        return EMPTY
    dt = np.asarray(found["dt"], dtype=np.int64)
    total = np.cumsum(dt)
    firsts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    before = total[firsts] - dt[firsts]
    lengths = np.diff(np.r_[firsts, len(ids)])
    ts = start + total - np.repeat(before, lengths)
    return Columns(ids, ts, np.asarray(found["value"], dtype=np.float64))


def sample_pieces(
    cursor: duckdb.DuckDBPyConnection,
    tables: Tables,
    block_ms: int,
    start_ms: int,
    end_ms: int,
    ids: Sequence[int] | None,
    compacted: bool = True,
) -> list[Columns]:
    """Samples in [start_ms, end_ms] of ``ids`` (None: all), in pieces each grouped by
    series and in time order within a series: one per compacted block (when
    ``compacted``), decoded in numpy, then the hot blocks, sorted by DuckDB."""
    filtered = _ids_filter(ids)
    pieces: list[Columns] = []
    if compacted:
        for start in layout.overlapping(list(tables.raw), block_ms, start_ms, end_ms):
            sql = f"SELECT series_id, dt, value FROM {layout.raw_table(start)} WHERE true{filtered}"
            found = cursor.execute(sql, _params(sql, ids=ids)).fetchnumpy()
            pieces.append(_decoded(start, found))
    hot = layout.overlapping(list(tables.hot), block_ms, start_ms, end_ms)
    if hot:
        union = " UNION ALL ".join(
            f"SELECT series_id, ts, value FROM {layout.hot_table(s)} "
            f"WHERE ts BETWEEN {start_ms} AND {end_ms}{filtered}"
            for s in hot
        )
        sql = f"SELECT * FROM ({union}) ORDER BY series_id, ts"
        found = cursor.execute(sql, _params(sql, ids=ids)).fetchnumpy()
        pieces.append(
            Columns(
                np.asarray(found["series_id"], dtype=np.uint32),
                np.asarray(found["ts"], dtype=np.int64),
                np.asarray(found["value"], dtype=np.float64),
            )
        )
    kept = []
    for piece in pieces:
        if len(piece) and (piece.ts.min() < start_ms or piece.ts.max() > end_ms):
            piece = piece.where((piece.ts >= start_ms) & (piece.ts <= end_ms))
        if len(piece):
            kept.append(piece)
    return kept


def concat(pieces: list[Columns]) -> Columns:
    """Pieces end to end, for readers that group by themselves."""
    if not pieces:
        return EMPTY
    if len(pieces) == 1:
        return pieces[0]
    return Columns(
        np.concatenate([p.series_id for p in pieces]),
        np.concatenate([p.ts for p in pieces]),
        np.concatenate([p.value for p in pieces]),
    )


def split_pieces(
    pieces: list[Columns],
) -> dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
    """Arrays per series from pieces in time order, without sorting them all together:
    each piece is cut at its series boundaries and the cuts joined per series."""
    if len(pieces) == 1:
        return pieces[0].split()
    cuts: dict[int, list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]] = {}
    for piece in pieces:
        ids = piece.series_id
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        ends = np.r_[starts[1:], len(ids)]
        for series_id, a, b in zip(
            ids[starts].tolist(), starts.tolist(), ends.tolist(), strict=True
        ):
            cuts.setdefault(series_id, []).append((piece.ts[a:b], piece.value[a:b]))
    out = {}
    for series_id, parts in cuts.items():
        ts = np.concatenate([t for t, _ in parts])
        values = np.concatenate([v for _, v in parts])
        ids = np.full(len(ts), series_id, dtype=np.uint32)
        out.update(Columns(ids, ts, values).split())
    return out


def raw_arrays(
    store: ColumnStore, ids: Sequence[int] | None, start_ms: int, end_ms: int
) -> dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
    """Raw samples per series, oldest first."""

    def read(cursor: duckdb.DuckDBPyConnection, tables: Tables) -> list[Columns]:
        return sample_pieces(cursor, tables, store.block_ms, start_ms, end_ms, ids)

    return split_pieces(retrying(store, read))


# --- the sample list (QUERY_SAMPLES) ---------------------------------------


def query_samples(store: ColumnStore, query: QuerySamples) -> SampleWindow:
    """The newest ``limit`` samples matching name and label equalities, oldest first.

    Blocks hold disjoint spans of time, so they are read newest first until enough
    samples were found: older blocks cannot hold newer samples."""
    everything = query.name is None and not query.labels
    matched = [] if everything else store.index.equal(query.name, query.labels)
    if not everything and not matched:
        return SampleWindow([], False)
    ids = None if everything else [info.id for info in matched]
    start = -FAR if query.start is None else round(query.start * 1000)
    end = FAR if query.end is None else round(query.end * 1000)
    wanted = query.limit + 1

    def read(cursor: duckdb.DuckDBPyConnection, tables: Tables) -> Columns:
        blocks = set(tables.raw) | tables.hot
        found: list[Columns] = []
        count = 0
        for block in sorted(layout.overlapping(list(blocks), store.block_ms, start, end))[::-1]:
            only = Tables(
                {block} & tables.hot,
                {block: tables.raw[block]} if block in tables.raw else {},
                tables.rollups,
            )
            pieces = sample_pieces(cursor, only, store.block_ms, start, end, ids)
            found.extend(pieces)
            count += sum(len(piece) for piece in pieces)
            if count >= wanted:
                break
        return concat(found)

    columns = retrying(store, read)
    order = np.lexsort((-columns.series_id.astype(np.int64), -columns.ts))[:wanted]
    rows: list[SampleRow] = []
    for series_id, ts, value in zip(
        columns.series_id[order].tolist(),
        columns.ts[order].tolist(),
        columns.value[order].tolist(),
        strict=True,
    ):
        info = store.index.get(series_id)
        rows.append((info.name, info.labels_json, ts / 1000, value))
    return newest_window(rows, query.limit)


# --- rollup buckets ---------------------------------------------------------


def rollup_union(
    cursor: duckdb.DuckDBPyConnection,
    tables: Tables,
    resolution: Resolution,
    block_ms: int,
    start_ms: int,
    end_ms: int,
    ids: Sequence[int] | None,
    with_sketch: bool,
) -> tuple[str | None, Columns]:
    """SQL of the rollup rows of ``resolution`` for buckets from the one holding
    ``start_ms`` to ``end_ms``: stored partitions, and the rest rolled up on the fly from
    the samples returned beside it (run it with ``run_with``). A bucket may have several
    rows (late samples are rolled up on their own): readers group by bucket."""
    low = resolution.bucket(start_ms)
    where = f"WHERE bucket BETWEEN {low} AND {end_ms}{_ids_filter(ids)}"
    parts = [
        f"SELECT * FROM {resolution.table(p)} {where}"
        for p in layout.overlapping(
            list(tables.rollups[resolution.name]), resolution.partition_ms, low, end_ms
        )
    ]
    recent = concat(
        sample_pieces(
            cursor,
            tables,
            block_ms,
            low,
            end_ms,
            ids,
            compacted=resolution in layout.ROLLUPS_AT_EXPIRY,
        )
    )
    if len(recent):
        parts.append(f"SELECT * FROM ({rollup_sql(RECENT, resolution.bucket_ms, with_sketch)})")
    return (" UNION ALL ".join(parts) if parts else None), recent


RECENT = "recent_samples"


def run_with(
    cursor: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, object], recent: Columns
) -> duckdb.DuckDBPyConnection:
    """Run ``sql``, which reads ``recent`` as the table ``recent_samples``.

    DuckDB finds the arrays by that name among this function's local variables (its
    replacement scan), so no view is registered: registering one is a catalog write,
    which would keep a concurrent CHECKPOINT from running.
    """
    recent_samples = recent.as_dict()  # noqa: F841 (read by DuckDB under that name)
    return cursor.execute(sql, params)


WANTED = {
    "last": "arg_max(v_last, last_ts)",
    "min": "min(v_min)",
    "max": "max(v_max)",
    "sum": "sum(v_sum)",
    "count": "CAST(sum(v_count) AS DOUBLE)",
    "avg": "sum(v_sum) / sum(v_count)",
}


STORED_COLUMNS = "series_id, bucket, last_ts, v_min, v_max, v_sum, v_count, v_last"
"""Stored rollup rows as they are: sorting and merging rows of one bucket (late samples
rolled up apart) is left to numpy, several times faster than a SQL grouping."""


def rollup_arrays(
    store: ColumnStore,
    resolution: Resolution,
    want: str,
    ids: Sequence[int] | None,
    start_ms: int,
    end_ms: int,
) -> dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
    """Per series, one point per bucket: ``want`` of the bucket, stamped with the time of
    its newest sample (so the last value keeps its own timestamp). Stored rollup rows
    come from SQL; the buckets not stored yet are reduced from samples in numpy, those
    of compacted blocks wholly inside the range once (``ColumnStore.bucket_cache``)."""
    low = resolution.bucket(start_ms)
    ids_key = None if ids is None else np.asarray(ids, dtype=np.uint32).tobytes()

    def read(
        cursor: duckdb.DuckDBPyConnection, tables: Tables
    ) -> dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
        parts: list[BucketRows] = []
        partitions = layout.overlapping(
            list(tables.rollups[resolution.name]), resolution.partition_ms, low, end_ms
        )
        if partitions:
            # whole partitions, cached until a rollup is written again
            key = ("stored", resolution.name, tuple(partitions), store.rollup_writes, ids_key)
            stored = store.bucket_cache.get(key)
            if stored is None:
                where = f"WHERE true{_ids_filter(ids)}"
                sql = " UNION ALL ".join(
                    f"SELECT {STORED_COLUMNS} FROM {resolution.table(p)} {where}"
                    for p in partitions
                )
                found = cursor.execute(sql, _params(sql, ids=ids)).fetchnumpy()
                stored = BucketRows.of_columns(found).sorted()
                store.bucket_cache.put(key, stored)
            parts.append(stored.between(low, end_ms))
        if resolution not in layout.ROLLUPS_AT_EXPIRY:
            uncached = tables
        else:
            # whole compacted blocks (bucket edges fall on block edges): cached
            whole = [
                start
                for start in layout.overlapping(list(tables.raw), store.block_ms, low, end_ms)
                if low <= start and start + store.block_ms - 1 <= end_ms
            ]
            for start in whole:
                block_key = (start, tables.raw[start], resolution.bucket_ms, ids_key)
                cached = store.bucket_cache.get(block_key)
                if cached is None:
                    cached = _block_buckets(cursor, start, ids, resolution.bucket_ms)
                    store.bucket_cache.put(block_key, cached)
                parts.append(cached)
            uncached = Tables(
                tables.hot,
                {s: t for s, t in tables.raw.items() if s not in whole},
                tables.rollups,
            )
        for piece in sample_pieces(
            cursor,
            uncached,
            store.block_ms,
            low,
            end_ms,
            ids,
            compacted=resolution in layout.ROLLUPS_AT_EXPIRY,
        ):
            parts.append(
                BucketRows.of_samples(piece.series_id, piece.ts, piece.value, resolution.bucket_ms)
            )
        return BucketRows.wanted_per_series(parts, want, start_ms, end_ms)

    return retrying(store, read)


def _block_buckets(
    cursor: duckdb.DuckDBPyConnection, start: int, ids: Sequence[int] | None, bucket_ms: int
) -> BucketRows:
    """The buckets of compacted block ``start`` (of ``ids``; None: every series)."""
    sql = f"SELECT series_id, dt, value FROM {layout.raw_table(start)} WHERE true{_ids_filter(ids)}"
    piece = _decoded(start, cursor.execute(sql, _params(sql, ids=ids)).fetchnumpy())
    return BucketRows.of_samples(piece.series_id, piece.ts, piece.value, bucket_ms)


# --- aggregates for the dashboard ------------------------------------------


def choose_resolution(
    store: ColumnStore,
    now_ms: int,
    start_ms: int,
    limit_ms: int,
    aligned_to: Sequence[int] = (),
) -> Resolution | None:
    """The coarsest rollup with a bucket no longer than ``limit_ms`` (and dividing each
    of ``aligned_to``) that still holds ``start_ms``; if none holds it, the
    coarsest that fits anyway (it keeps the most). None: raw samples."""
    fitting = [
        r
        for r in ROLLUPS
        if r.bucket_ms <= limit_ms and all(edge % r.bucket_ms == 0 for edge in aligned_to)
    ]
    if not fitting:
        return None
    for resolution in reversed(fitting):
        if store.retention.oldest(resolution.name, now_ms) <= start_ms:
            return resolution
    return fitting[-1]


def aggregate(
    store: ColumnStore,
    now_ms: int,
    name: str,
    labels: dict[str, str],
    start_ms: int,
    end_ms: int,
    step_ms: int,
    aggregation: str,
    by: Sequence[str],
) -> list[dict[str, Any]]:
    """Series of ``name`` with these labels, grouped by the ``by`` labels, aggregated
    over every step [t, t + step) from ``start_ms``: one point per step with data."""
    matched = store.index.equal(name, labels)
    matched = store.index.in_window(matched, start_ms, end_ms)
    if not matched:
        return []
    groups: dict[tuple[str, ...], int] = {}
    group_of: list[int] = []
    for info in matched:
        key = tuple(info.labels.get(label, "") for label in by)
        group_of.append(groups.setdefault(key, len(groups)))
    ids = [info.id for info in matched]
    resolution = choose_resolution(store, now_ms, start_ms, step_ms, aligned_to=(start_ms, step_ms))

    def read(cursor: duckdb.DuckDBPyConnection, tables: Tables) -> list[tuple[int, int, float]]:
        union: str | None
        if resolution is None:
            recent = concat(sample_pieces(cursor, tables, store.block_ms, start_ms, end_ms, ids))
            if not len(recent):
                return []
            union = f"SELECT * FROM {RECENT}"
        else:
            union, recent = rollup_union(
                cursor,
                tables,
                resolution,
                store.block_ms,
                start_ms,
                end_ms,
                ids,
                aggregation in QUANTILES,
            )
        if union is None:
            return []
        sql = _aggregate_sql(union, resolution is not None, aggregation, start_ms, step_ms)
        params = {"ids": ids, "sids": ids, "groups": group_of}
        used = {key: value for key, value in params.items() if f"${key}" in sql}
        rows = run_with(cursor, sql, used, recent).fetchall()
        return [(int(g), int(t), float(v)) for g, t, v in rows]

    points: dict[int, list[list[float]]] = {index: [] for index in groups.values()}
    for group, ts, value in retrying(store, read):
        points[group].append([ts / 1000, value])
    return [
        {"labels": dict(zip(by, key, strict=True)), "points": points[index]}
        for key, index in groups.items()
        if points[index]
    ]


def _aggregate_sql(union: str, rollup: bool, aggregation: str, start_ms: int, step_ms: int) -> str:
    ts = "bucket" if rollup else "ts"
    step = f"{start_ms} + ({ts} - {start_ms}) // {step_ms} * {step_ms}"
    mapped = (
        f"SELECT m.g, {step} AS step, u.* FROM ({union}) u "
        "JOIN (SELECT unnest($sids::UINTEGER[]) AS series_id, unnest($groups::INTEGER[]) AS g) m "
        "USING (series_id)"
    )
    if aggregation in QUANTILES:
        if rollup:
            keyed = (
                "SELECT g, step, unnest(sketch_keys) AS k, unnest(sketch_counts) AS c "
                f"FROM ({mapped})"
            )
        else:
            keyed = f"SELECT g, step, {sketch.key_sql('value')} AS k, 1 AS c FROM ({mapped})"
        q = QUANTILES[aggregation]
        return (
            f"WITH keyed AS ({keyed}), "
            "merged AS (SELECT g, step, k, sum(c) AS c FROM keyed "
            "WHERE k IS NOT NULL GROUP BY ALL), "
            "ranked AS (SELECT g, step, k, "
            "sum(c) OVER (PARTITION BY g, step ORDER BY k) AS cum, "
            "sum(c) OVER (PARTITION BY g, step) AS total FROM merged) "
            f"SELECT g, step, {sketch.value_sql('min(k)')} AS value FROM ranked "
            f"WHERE cum > {q} * (total - 1) GROUP BY g, step ORDER BY g, step"
        )
    if rollup:
        expression = WANTED[aggregation]
    else:
        expression = {
            "last": "arg_max(value, ts)",
            "min": "min(value)",
            "max": "max(value)",
            "sum": "sum(value)",
            "count": "CAST(count(*) AS DOUBLE)",
            "avg": "avg(value)",
        }[aggregation]
    return (
        f"SELECT g, step, {expression} AS value FROM ({mapped}) GROUP BY g, step ORDER BY g, step"
    )


def resolution_for_select(
    store: ColumnStore, now_ms: int, start_ms: int, step_ms: int, range_ms: int
) -> Resolution | None:
    """PromQL's choice: a rollup only when its bucket is no longer than the step (when
    there is one) nor the range window."""
    limit = min(step_ms, range_ms) if step_ms > 0 else range_ms
    return choose_resolution(store, now_ms, start_ms, limit)
