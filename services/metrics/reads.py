"""Reading the store: raw samples, rollup buckets, the sample list and aggregates.

Every read takes a copy of the table list, builds one query over the tables that hold
its time range, and runs on a cursor of its own. A compaction or retention pass may drop
a table between the copy and the query: the read is then simply tried again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import duckdb
import numpy as np
import numpy.typing as npt

from services.metrics import layout, sketch
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


def raw_union(
    tables: Tables, block_ms: int, start_ms: int, end_ms: int, ids: Sequence[int] | None
) -> str | None:
    """SQL of the raw samples (series_id, ts, value) in [start_ms, end_ms]; None when no
    table holds any."""
    names = [
        layout.raw_table(s)
        for s in layout.overlapping(list(tables.raw), block_ms, start_ms, end_ms)
    ]
    names += [
        layout.hot_table(s)
        for s in layout.overlapping(list(tables.hot), block_ms, start_ms, end_ms)
    ]
    if not names:
        return None
    where = f"WHERE ts BETWEEN {start_ms} AND {end_ms}{_ids_filter(ids)}"
    return " UNION ALL ".join(f"SELECT series_id, ts, value FROM {name} {where}" for name in names)


def rollup_union(
    tables: Tables,
    resolution: Resolution,
    block_ms: int,
    start_ms: int,
    end_ms: int,
    ids: Sequence[int] | None,
) -> str | None:
    """SQL of the rollup rows of ``resolution`` with a bucket in [start_ms, end_ms]: the
    stored partitions, and the hot blocks rolled up on the fly. A bucket may have several
    rows (late samples are rolled up on their own): readers group by bucket."""
    where = f"WHERE bucket BETWEEN {start_ms} AND {end_ms}{_ids_filter(ids)}"
    parts = [
        f"SELECT * FROM {resolution.table(p)} {where}"
        for p in layout.overlapping(
            list(tables.rollups[resolution.name]), resolution.partition_ms, start_ms, end_ms
        )
    ]
    for start in layout.overlapping(list(tables.hot), block_ms, start_ms, end_ms):
        hot = layout.hot_table(start)
        source = f"(SELECT * FROM {hot} WHERE ts BETWEEN {start_ms} AND {end_ms}{_ids_filter(ids)})"
        parts.append(f"SELECT * FROM ({rollup_sql(source, resolution.bucket_ms)})")
    return " UNION ALL ".join(parts) if parts else None


def _params(sql: str, ids: Sequence[int] | None) -> dict[str, object]:
    return {"ids": list(ids)} if ids is not None and "$ids" in sql else {}


# --- the sample list (QUERY_SAMPLES) ---------------------------------------


def query_samples(store: ColumnStore, query: QuerySamples) -> SampleWindow:
    """The newest ``limit`` samples matching name and label equalities, oldest first."""
    everything = query.name is None and not query.labels
    matched = [] if everything else store.index.equal(query.name, query.labels)
    if not everything and not matched:
        return SampleWindow([], False)
    ids = None if everything else [info.id for info in matched]
    start = -FAR if query.start is None else round(query.start * 1000)
    end = FAR if query.end is None else round(query.end * 1000)

    def read(cursor: duckdb.DuckDBPyConnection, tables: Tables) -> list[tuple[int, int, float]]:
        union = raw_union(tables, store.block_ms, start, end, ids)
        if union is None:
            return []
        sql = (
            f"SELECT series_id, ts, value FROM ({union}) "
            f"ORDER BY ts DESC, series_id DESC LIMIT {query.limit + 1}"
        )
        return [
            (int(i), int(t), float(v))
            for i, t, v in cursor.execute(sql, _params(sql, ids)).fetchall()
        ]

    rows: list[SampleRow] = []
    for series_id, ts, value in retrying(store, read):
        info = store.index.get(series_id)
        rows.append((info.name, info.labels_json, ts / 1000, value))
    return newest_window(rows, query.limit)


# --- per-series arrays (the PromQL source) ---------------------------------


@dataclass(frozen=True)
class Columns:
    """Points of many series, grouped by series and oldest first within each."""

    series_id: npt.NDArray[np.uint32]
    ts: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]

    def split(self) -> dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
        """Arrays per series; of equal timestamps the last stored value is kept."""
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


def _fetch(cursor: duckdb.DuckDBPyConnection, sql: str, ids: Sequence[int] | None) -> Columns:
    result = cursor.execute(sql, _params(sql, ids)).fetchnumpy()
    return Columns(
        np.asarray(result["series_id"], dtype=np.uint32),
        np.asarray(result["ts"], dtype=np.int64),
        np.asarray(result["value"], dtype=np.float64),
    )


def raw_columns(store: ColumnStore, ids: Sequence[int], start_ms: int, end_ms: int) -> Columns:
    """Raw samples of ``ids``, sorted by series then time.

    Compacted blocks are sorted already and cover disjoint time, so each is read on its
    own in time order and only the hot blocks are sorted; the pieces are stitched per
    series without a global sort.
    """

    def read(cursor: duckdb.DuckDBPyConnection, tables: Tables) -> Columns:
        pieces: list[Columns] = []
        for start in layout.overlapping(list(tables.raw), store.block_ms, start_ms, end_ms):
            pieces.append(
                _fetch(
                    cursor,
                    f"SELECT series_id, ts, value FROM {layout.raw_table(start)} "
                    f"WHERE ts BETWEEN {start_ms} AND {end_ms}{_ids_filter(ids)}",
                    ids,
                )
            )
        hot = layout.overlapping(list(tables.hot), store.block_ms, start_ms, end_ms)
        if hot:
            union = " UNION ALL ".join(
                f"SELECT series_id, ts, value FROM {layout.hot_table(s)} "
                f"WHERE ts BETWEEN {start_ms} AND {end_ms}{_ids_filter(ids)}"
                for s in hot
            )
            pieces.append(_fetch(cursor, f"SELECT * FROM ({union}) ORDER BY series_id, ts", ids))
        return _stitch(pieces)

    return retrying(store, read)


def _stitch(pieces: list[Columns]) -> Columns:
    """Pieces each sorted by (series, ts), in time order of their blocks, into one
    sorted by (series, ts): a stable sort by series keeps each series' time order."""
    pieces = [p for p in pieces if len(p.series_id)]
    if not pieces:
        empty = np.empty(0)
        return Columns(empty.astype(np.uint32), empty.astype(np.int64), empty)
    if len(pieces) == 1:
        return pieces[0]
    ids = np.concatenate([p.series_id for p in pieces])
    order = np.argsort(ids, kind="stable")
    return Columns(
        ids[order],
        np.concatenate([p.ts for p in pieces])[order],
        np.concatenate([p.value for p in pieces])[order],
    )


WANTED = {
    "last": "arg_max(v_last, last_ts)",
    "min": "min(v_min)",
    "max": "max(v_max)",
    "sum": "sum(v_sum)",
    "count": "CAST(sum(v_count) AS DOUBLE)",
    "avg": "sum(v_sum) / sum(v_count)",
}


def rollup_columns(
    store: ColumnStore,
    resolution: Resolution,
    want: str,
    ids: Sequence[int],
    start_ms: int,
    end_ms: int,
) -> Columns:
    """One point per series and bucket: ``want`` of the bucket, stamped with the time of
    the bucket's newest sample (so the last value keeps its own timestamp)."""

    def read(cursor: duckdb.DuckDBPyConnection, tables: Tables) -> Columns:
        union = rollup_union(tables, resolution, store.block_ms, start_ms, end_ms, ids)
        if union is None:
            return _stitch([])
        sql = (
            f"SELECT series_id, max(last_ts) AS ts, {WANTED[want]} AS value FROM ({union}) "
            "GROUP BY series_id, bucket ORDER BY series_id, bucket"
        )
        return _fetch(cursor, sql, ids)

    return retrying(store, read)


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
    matched = [info for info in matched if info.last_ms >= start_ms and info.first_ms <= end_ms]
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
        if resolution is None:
            union = raw_union(tables, store.block_ms, start_ms, end_ms, ids)
        else:
            union = rollup_union(tables, resolution, store.block_ms, start_ms, end_ms, ids)
        if union is None:
            return []
        sql = _aggregate_sql(union, resolution is not None, aggregation, start_ms, step_ms)
        params = {"ids": ids, "sids": ids, "groups": group_of}
        used = {key: value for key, value in params.items() if f"${key}" in sql}
        rows = cursor.execute(sql, used).fetchall()
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
