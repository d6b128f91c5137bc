"""The samples store as the async service uses it (see ``columnar`` for the layout).

DuckDB calls block, so every one runs in a worker thread: one thread owns the writing
connection, so writes never interleave; readers use cursors of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from services.metrics import reads
from services.metrics.columnar import ColumnStore
from services.metrics.domain import SampleWindow
from services.metrics.settings import MetricsSettings
from shared.commands import QuerySamples
from shared.errors import InvalidInput
from shared.events import SampleBatch

log = logging.getLogger(__name__)

T = TypeVar("T")

SERVICE = "metrics"
STORE_PROJECTION = "metrics-store"
FILE_NAME = "metrics.duckdb"


class MetricsStore:
    """The store as the async service uses it: every DuckDB call in a worker thread,
    writes on a single thread so they never interleave."""

    def __init__(self, path: Path, tuning: MetricsSettings, raw_retention_s: float):
        self.path = path
        self.tuning = tuning
        self.raw_retention_s = raw_retention_s
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-writer")
        self._readers = ThreadPoolExecutor(
            max_workers=tuning.threads, thread_name_prefix="metrics-reader"
        )
        self._core: ColumnStore | None = None

    @property
    def core(self) -> ColumnStore:
        if self._core is None:
            raise RuntimeError("the metrics store is not open")
        return self._core

    async def write(self, call: Callable[[ColumnStore], T]) -> T:
        """Run ``call`` on the writer thread. After a fatal error (a full disk while
        committing) DuckDB refuses every further call on that database: it is opened
        again from its file, at its last commit, and the error raised, so the batch is
        delivered again."""

        def guarded() -> T:
            core = self.core
            try:
                return call(core)
            except duckdb.Error as error:
                if isinstance(error, duckdb.FatalException) or "invalidated" in str(error):
                    self._reopen(core)
                raise

        return await asyncio.get_running_loop().run_in_executor(self._writer, guarded)

    def _reopen(self, broken: ColumnStore) -> None:
        with contextlib.suppress(duckdb.Error):
            broken.close()
        try:
            self._core = ColumnStore(self.path, self.tuning, self.raw_retention_s)
        except duckdb.Error:
            log.exception("metrics store could not be opened again; next write retries")
            self._core = broken
        else:
            log.warning("metrics store opened again after a fatal error")

    async def read(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._readers, call)

    async def open(self) -> None:
        def opening() -> ColumnStore:
            return ColumnStore(self.path, self.tuning, self.raw_retention_s)

        loop = asyncio.get_running_loop()
        self._core = await loop.run_in_executor(self._writer, opening)

    async def close(self) -> None:
        if self._core is not None:
            await self.write(lambda core: core.close())
            self._core = None
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)

    async def store(self, seq: int, batches: Sequence[SampleBatch]) -> bool:
        return await self.store_sequenced([(seq, batch) for batch in batches])

    async def store_sequenced(self, batches: Sequence[tuple[int, SampleBatch]]) -> bool:
        return await self.write(lambda core: core.store_sequenced(batches))

    async def compact(self, now_s: float) -> int:
        return await self.write(lambda core: core.compact(now_s))

    async def apply_retention(self, now_s: float) -> int:
        return await self.write(lambda core: core.apply_retention(now_s))

    async def reset_for_replay(self) -> None:
        await self.write(lambda core: core.reset_for_replay())

    async def last_seq(self) -> int:
        return self.core.last_seq

    async def stored_samples(self) -> int:
        return self.core.stored

    async def query(self, query: QuerySamples) -> SampleWindow:
        core = self.core
        return await self.read(lambda: reads.query_samples(core, query))

    async def aggregate(
        self,
        name: str,
        labels: dict[str, str],
        start_s: float,
        end_s: float,
        step_s: float,
        aggregation: str,
        by: Sequence[str] = (),
        now_s: float | None = None,
    ) -> list[dict[str, Any]]:
        """Series of ``name`` having every label of ``labels``, grouped by the ``by``
        labels: per group, one ``[t, value]`` per step ``[t, t + step)`` from ``start_s``
        that holds data, t in Unix seconds. From the coarsest rollup whose bucket divides
        the step and still covers ``start_s``, else from raw samples. Quantiles (p50, p90,
        p99) come from the merged sketches, within about 1% of the true value.
        """
        if aggregation not in reads.AGGREGATIONS:
            raise InvalidInput(
                f"aggregation must be one of {', '.join(reads.AGGREGATIONS)}", "aggregation"
            )
        if not step_s > 0:
            raise InvalidInput("step must be positive", "step")
        if end_s < start_s:
            raise InvalidInput("end must not be before start", "end")
        start_ms, end_ms, step_ms = round(start_s * 1000), round(end_s * 1000), round(step_s * 1000)
        if step_ms < 1:
            raise InvalidInput("step must be at least a millisecond", "step")
        now_ms = round((time.time() if now_s is None else now_s) * 1000)
        core = self.core
        return await self.read(
            lambda: reads.aggregate(
                core, now_ms, name, labels, start_ms, end_ms, step_ms, aggregation, list(by)
            )
        )

    async def ping(self) -> None:
        """A query on a reader's cursor: raises when the file no longer answers."""

        def ping() -> None:
            cursor = self.core.reader()
            try:
                cursor.execute("SELECT count(*) FROM metrics_state").fetchone()
            finally:
                cursor.close()

        await self.read(ping)

    async def position(self) -> tuple[int, int]:
        """(stored samples, checkpoint), read together on the writer thread so they agree."""
        return await self.write(lambda core: (core.stored, core.last_seq))
