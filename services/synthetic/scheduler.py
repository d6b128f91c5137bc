"""Running checks on their interval or on request, never two runs of one check at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import aiohttp

from services.synthetic.domain import (
    CheckCatalog,
    Trigger,
    record_run,
    samples_for,
)
from services.synthetic.probe import probe
from shared import subjects
from shared.bus import EventBus
from shared.events import CheckRunRecorded
from shared.outbound import OutboundGuard

log = logging.getLogger(__name__)

# Start times are spread over the interval, but a new check waits at most this long.
MAX_START_SPREAD_S = 30.0


def start_offset(check_id: str, interval_s: float) -> float:
    """A stable offset per check so many checks with one interval do not fire together."""
    fraction = int(check_id.replace("-", "")[:8], 16) / 0xFFFFFFFF
    return fraction * min(interval_s, MAX_START_SPREAD_S)


class CheckRunner:
    """Probes a check, records the run and its samples. Every probe connects through
    ``guard``, the outbound policy of this process."""

    def __init__(self, catalog: CheckCatalog, bus: Callable[[], EventBus], guard: OutboundGuard):
        self.catalog = catalog
        self._bus = bus
        self.guard = guard
        self._session: aiohttp.ClientSession | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    async def open(self) -> None:
        if self._session is None:
            self._session = self.guard.session()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def is_running(self, check_id: str) -> bool:
        lock = self._locks.get(check_id)
        return lock is not None and lock.locked()

    async def run(self, check_id: str, trigger: Trigger) -> tuple[CheckRunRecorded, int]:
        """Returns the recorded run and its stream sequence; NotFound for an unknown check."""
        self.catalog.get(check_id)
        if self._session is None:
            raise RuntimeError("the synthetic prober's HTTP session is not open")
        async with self._locks.setdefault(check_id, asyncio.Lock()):
            definition = self.catalog.get(check_id)
            outcome = await probe(self._session, definition)
            run = record_run(self.catalog, definition, outcome, trigger)
            bus = self._bus()
            seq = await bus.publish(subjects.check_result(check_id), run)
            self.catalog.record_run(run)
            await bus.publish(
                subjects.samples("synthetic"), samples_for(definition, run, time.time())
            )
        log.info(
            "check ran",
            extra={
                "check_id": check_id,
                "check": run.name,
                "ok": run.ok,
                "status_code": run.status_code,
                "latency_ms": run.latency_ms,
                "consecutive_failures": run.consecutive_failures,
                "trigger": trigger,
                "stream_seq": seq,
            },
        )
        return run, seq


class CheckScheduler:
    """One loop per enabled check, started and stopped as the catalog changes."""

    def __init__(self, catalog: CheckCatalog, runner: CheckRunner):
        self.catalog = catalog
        self.runner = runner
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._running = False

    async def run_forever(self) -> None:
        self._running = True
        self.sync()
        try:
            await asyncio.Event().wait()
        finally:
            self._running = False
            loops = list(self._loops.values())
            for task in loops:
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._loops.clear()

    def sync(self) -> None:
        """Pick up added, changed, disabled and removed checks at once."""
        if not self._running:
            return
        active = set(self.catalog.active_ids())
        for check_id, task in list(self._loops.items()):
            if task.done():
                del self._loops[check_id]
            elif check_id not in active and not self.runner.is_running(check_id):
                task.cancel()
                del self._loops[check_id]
            else:
                self._wake.setdefault(check_id, asyncio.Event()).set()
        for check_id in active - set(self._loops):
            self._loops[check_id] = asyncio.create_task(
                self._loop(check_id), name=f"synthetic-check-{check_id}"
            )

    async def _loop(self, check_id: str) -> None:
        definition = self.catalog.active(check_id)
        if definition is None:
            return
        loop = asyncio.get_running_loop()
        offset = start_offset(check_id, definition.interval_s)
        await self._pause(check_id, loop.time() - definition.interval_s, offset)
        while self.catalog.active(check_id) is not None:
            started = loop.time()
            try:
                await self.runner.run(check_id, "schedule")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("check run failed to record", extra={"check_id": check_id})
            await self._pause(check_id, started)

    async def _pause(self, check_id: str, last_start: float, extra_s: float = 0.0) -> None:
        """Sleep until the next run is due; a definition change re-evaluates the deadline."""
        loop = asyncio.get_running_loop()
        wake = self._wake.setdefault(check_id, asyncio.Event())
        while (definition := self.catalog.active(check_id)) is not None:
            remaining = last_start + definition.interval_s + extra_s - loop.time()
            if remaining <= 0:
                return
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), remaining)
