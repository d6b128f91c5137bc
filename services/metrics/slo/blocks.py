"""An SLO's raw samples from compacted blocks, kept in memory between evaluations.

A compacted block never changes under its key (late samples rewrite it under a new
``through_seq``), and the burn-rate evaluation asks for the same days every 30 s. So the
blocks of a window are kept joined per series, and a warm read only slices arrays; when
a block joins or is rewritten, the next window takes the blocks it shares with the last
one from it and reads the others, together (a query per block costs more in DuckDB's
planning than in its scan).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import duckdb
import numpy as np
import numpy.typing as npt

from services.metrics import layout, reads
from services.metrics.columnar import ColumnStore, Tables
from services.metrics.slo.arithmetic import Ints, Series

BLOCK_CACHE_BYTES = 64 * 1024 * 1024
BLOCKS_PER_QUERY = 32
"""Compacted blocks read in one UNION ALL: DuckDB plans a long union in time growing
faster than its length (720 blocks in one query took 3x as long as in 32-block parts)."""
JOINED_PER_SERIES_SET = 2  # joined windows kept: the burn evaluation's and one other
LITERAL_IDS = 1000  # up to this many series ids are written into the SQL as a list


Blocks = tuple[tuple[int, int], ...]  # compacted blocks: (start, through_seq), in order
Window = tuple[tuple[int, ...], Blocks]  # series ids and blocks


class BlockCache:
    """Samples of compacted blocks joined per series, by set of series and blocks (a
    window), least recently used going first once ``max_bytes`` is reached. A set of
    series keeps its ``JOINED_PER_SERIES_SET`` newest windows: an older one is stale
    once a new block joins, and the next window is built from the newest."""

    def __init__(self, max_bytes: int = BLOCK_CACHE_BYTES):
        self.max_bytes = max_bytes
        self.used = 0
        self._entries: OrderedDict[Window, reads.Columns] = OrderedDict()
        self._lock = threading.Lock()
        self._windows: dict[tuple[int, ...], list[Blocks]] = {}

    @staticmethod
    def size(piece: reads.Columns) -> int:
        return int(piece.series_id.nbytes + piece.ts.nbytes + piece.value.nbytes)

    def get(self, key: Window) -> reads.Columns | None:
        with self._lock:
            piece = self._entries.get(key)
            if piece is not None:
                self._entries.move_to_end(key)
            return piece

    def windows(self, ids: tuple[int, ...]) -> list[tuple[Blocks, reads.Columns]]:
        """The windows of these series still held."""
        with self._lock:
            held = [
                (blocks, self._entries.get((ids, blocks))) for blocks in self._windows.get(ids, [])
            ]
            return [(blocks, piece) for blocks, piece in held if piece is not None]

    def put(self, key: Window, piece: reads.Columns) -> None:
        size = self.size(piece)
        with self._lock:
            ids, blocks = key
            recent = [b for b in self._windows.get(ids, []) if b != blocks] + [blocks]
            self._windows[ids] = recent[-JOINED_PER_SERIES_SET:]
            for old in recent[:-JOINED_PER_SERIES_SET]:
                self._drop((ids, old))
            self._drop(key)
            if size > self.max_bytes:
                return
            self._entries[key] = piece
            self.used += size
            while self.used > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self.used -= self.size(evicted)

    def _drop(self, key: Window) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self.used -= self.size(old)


def read_blocks(
    cursor: duckdb.DuckDBPyConnection, starts: Sequence[int], ids: Sequence[int]
) -> dict[int, reads.Columns]:
    """The samples of ``ids`` in each compacted block of ``starts``, a few queries for
    them all (on two cursors at once: a block first touched costs DuckDB a load it does
    partly outside the GIL); each block's rows grouped by series and in time order."""
    params: dict[str, object] = {}
    if len(ids) <= LITERAL_IDS:
        where = f"series_id IN ({', '.join(str(int(i)) for i in ids)})"
    else:
        where, params = "series_id IN (SELECT unnest($ids::UINTEGER[]))", {"ids": list(ids)}
    parts = [starts[i : i + BLOCKS_PER_QUERY] for i in range(0, len(starts), BLOCKS_PER_QUERY)]

    def read(part: Sequence[int]) -> dict[int, reads.Columns]:
        own = cursor.cursor()
        try:
            return _read_part(own, part, where, params)
        finally:
            own.close()

    found: dict[int, reads.Columns] = {start: reads.EMPTY for start in starts}
    if len(parts) == 1:
        found.update(_read_part(cursor, parts[0], where, params))
    else:
        for each in _POOL.map(read, parts):
            found.update(each)
    return found


_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="slo-blocks")


def _read_part(
    cursor: duckdb.DuckDBPyConnection, part: Sequence[int], where: str, params: dict[str, object]
) -> dict[int, reads.Columns]:
    sql = " UNION ALL ".join(
        f"SELECT {n} AS block, rowid AS row, series_id, dt, value "
        f"FROM {layout.raw_table(start)} WHERE {where}"
        for n, start in enumerate(part)
    )
    rows = cursor.execute(sql, params).fetchnumpy()
    block = np.asarray(rows["block"], dtype=np.int64)
    if len(block) == 0:
        return {}
    row = np.asarray(rows["row"], dtype=np.int64)
    # a block's timestamps are sums of distances in stored order: keep that order
    same = block[1:] == block[:-1]
    if not bool(np.all((block[1:] > block[:-1]) | (same & (row[1:] > row[:-1])))):
        order = np.lexsort((row, block))
        block, rows = block[order], {k: np.asarray(v)[order] for k, v in rows.items()}
    ids_found = np.asarray(rows["series_id"], dtype=np.uint32)
    dt = np.asarray(rows["dt"], dtype=np.int64)
    value = np.asarray(rows["value"], dtype=np.float64)
    ts = decoded_ts(np.asarray(part, dtype=np.int64)[block], block, ids_found, dt)
    edges = np.flatnonzero(np.r_[True, block[1:] != block[:-1], True])
    return {
        part[int(block[a])]: reads.Columns(ids_found[a:b], ts[a:b], value[a:b])
        for a, b in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True)
    }


def decoded_ts(origin: Ints, block: Ints, ids: npt.NDArray[np.uint32], dt: Ints) -> Ints:
    """Absolute timestamps of rows of several blocks: each series' distances summed from
    its block's start (``origin``, per row)."""
    total = np.cumsum(dt)
    firsts = np.flatnonzero(np.r_[True, (ids[1:] != ids[:-1]) | (block[1:] != block[:-1])])
    before = total[firsts] - dt[firsts]
    lengths = np.diff(np.r_[firsts, len(ids)])
    return origin + total - np.repeat(before, lengths)


def cached_raw_arrays(
    store: ColumnStore, cache: BlockCache, ids: Sequence[int], start_ms: int, end_ms: int
) -> dict[int, Series]:
    """Raw samples per series in ``[start_ms, end_ms]``: compacted blocks from the cache
    when it has them, the hot blocks always from the store."""
    key_ids = tuple(ids)

    def read(
        cursor: duckdb.DuckDBPyConnection, tables: Tables
    ) -> tuple[reads.Columns, list[reads.Columns]]:
        blocks = tuple(
            (start, tables.raw[start])
            for start in layout.overlapping(list(tables.raw), store.block_ms, start_ms, end_ms)
        )
        compacted = joined_blocks(cursor, cache, key_ids, blocks, store.block_ms)
        hot = reads.sample_pieces(
            cursor, tables, store.block_ms, start_ms, end_ms, ids, compacted=False
        )
        return compacted, hot

    compacted, hot = reads.retrying(store, read)
    found: dict[int, Series] = {}
    for series_id, (ts, values) in by_series(compacted):
        low = int(np.searchsorted(ts, start_ms, side="left"))
        high = int(np.searchsorted(ts, end_ms, side="right"))
        if high > low:
            found[series_id] = (ts[low:high], values[low:high])
    for series_id, (ts, values) in reads.split_pieces(hot).items():
        older = found.get(series_id)
        if older is None:
            found[series_id] = (ts, values)
        elif len(ts) and ts[0] > older[0][-1]:
            found[series_id] = (np.concatenate([older[0], ts]), np.concatenate([older[1], values]))
        else:  # late samples not compacted yet: in time order, the later stored kept
            both = np.concatenate([older[0], ts])
            ids_of = np.full(len(both), series_id, dtype=np.uint32)
            joined = reads.Columns(ids_of, both, np.concatenate([older[1], values]))
            found[series_id] = joined.split()[series_id]
    return found


def joined_blocks(
    cursor: duckdb.DuckDBPyConnection,
    cache: BlockCache,
    ids: tuple[int, ...],
    blocks: Blocks,
    block_ms: int,
) -> reads.Columns:
    """The samples of these compacted blocks grouped by series, in time order within
    each: from the cache, or the blocks a held window of these series has (the same
    start and checkpoint: the same samples) taken from it and the others read."""
    joined = cache.get((ids, blocks))
    if joined is not None:
        return joined
    wanted = set(blocks)
    base_blocks: set[tuple[int, int]] = set()
    base = reads.EMPTY
    for held_blocks, held in cache.windows(ids):
        if len(wanted.intersection(held_blocks)) > len(base_blocks):
            base_blocks, base = wanted.intersection(held_blocks), held
    read = read_blocks(
        cursor, [start for start, seq in blocks if (start, seq) not in base_blocks], ids
    )
    pieces: list[reads.Columns] = []
    run: list[int] = []  # adjacent blocks taken from ``base``: one cut for them all

    def cut() -> None:
        if run:
            ts = base.ts
            piece = base.where((ts >= run[0]) & (ts < run[-1] + block_ms))
            if len(piece):
                pieces.append(piece)
            run.clear()

    for start, seq in blocks:
        if (start, seq) in base_blocks:
            if run and run[-1] + block_ms != start:
                cut()
            run.append(start)
            continue
        cut()
        if len(read[start]):
            pieces.append(read[start])
    cut()
    joined = grouped(pieces)
    cache.put((ids, blocks), joined)
    return joined


def grouped(pieces: list[reads.Columns]) -> reads.Columns:
    """Pieces of consecutive blocks as one, grouped by series and in time order within
    each; of equal timestamps (a block may hold a late duplicate) the later kept."""
    joined = reads.concat(pieces)
    ids, ts = joined.series_id, joined.ts
    if len(ids) > 1 and not bool(np.all(ids[1:] >= ids[:-1])):
        order = np.argsort(ids, kind="stable")  # blocks are in time order: stays so
        joined = reads.Columns(ids[order], ts[order], joined.value[order])
        ids, ts = joined.series_id, joined.ts
    if bool(np.all((ids[1:] != ids[:-1]) | (ts[1:] > ts[:-1]))):
        return joined
    split = reads.split_pieces(pieces)
    order_ids = sorted(split)
    return reads.Columns(
        np.concatenate([np.full(len(split[i][0]), i, dtype=np.uint32) for i in order_ids]),
        np.concatenate([split[i][0] for i in order_ids]),
        np.concatenate([split[i][1] for i in order_ids]),
    )


def by_series(columns: reads.Columns) -> list[tuple[int, Series]]:
    """Each series' arrays of columns grouped by series (views, not copies)."""
    ids = columns.series_id
    if len(ids) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    return [
        (int(ids[a]), (columns.ts[a:b], columns.value[a:b]))
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    ]
