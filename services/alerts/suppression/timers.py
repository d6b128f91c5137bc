"""One task that does the suppressor's work when woken or when its next deadline comes.

Deadlines come from the books (a silence ends, a window opens) and from flapping (a
series settles); the task sleeps until the earliest, never scanning alerts on a tick.
Sleeps are capped so a clock set forward (or a test's clock moved) is noticed within
``MAX_SLEEP_S`` even without a wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

log = logging.getLogger(__name__)

MAX_SLEEP_S = 1.0
MIN_SLEEP_S = 0.01  # a deadline the work did not consume must not spin the loop
RETRY_S = 1.0


class Alarm:
    def __init__(self, clock: Callable[[], datetime]):
        self.clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Run the work now (something changed that it must look at)."""
        self._wake.set()

    async def run(
        self,
        work: Callable[[], Awaitable[None]],
        next_deadline: Callable[[], datetime | None],
    ) -> None:
        """Do ``work`` now and each time it is woken or ``next_deadline`` passes; a failed
        run (the log unreachable) is tried again after ``RETRY_S``."""
        while True:
            self._wake.clear()
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("suppression work failed; trying again", exc_info=True)
                await self._sleep(RETRY_S)
                continue
            await self._sleep(self._until(next_deadline()))

    def _until(self, deadline: datetime | None) -> float:
        if deadline is None:
            return MAX_SLEEP_S
        wait = (deadline - self.clock()).total_seconds()
        return min(MAX_SLEEP_S, max(MIN_SLEEP_S, wait))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
