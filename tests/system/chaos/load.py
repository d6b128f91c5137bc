"""A careful client: each batch has its own Idempotency-Key and is retried with that key
on 429 (after its Retry-After), 5xx and connection errors until it is accepted.

Every other bulk batch goes as Prometheus remote write instead (a SampleBlock on the
stream), retried with the same bytes as Prometheus does: its id is derived from them."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import orjson

from shared.promwire import REMOTE_WRITE_HEADERS, snappy, write_request
from tests.conftest import ADMIN_HEADERS
from tests.system.chaos.scenario import BULK_VALUE, CRITICAL_VALUE, METRIC, Scenario

METRICS_PATH = "/api/monitoring/metrics"
REMOTE_WRITE_PATH = "/api/v1/write"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass
class Batch:
    key: str
    samples: int
    series: str | None  # the critical series' label value, None for bulk
    first_sent: float
    accepted_at: float | None = None
    attempts: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    rejected: str | None = None  # an answer no retry can change (a 4xx other than 429)
    remote_write: bool = False


class LoadGenerator:
    """A careful client: one connection pool, pre-built bodies, retries with the same key."""

    def __init__(self, scenario: Scenario, url: Callable[[], str]):
        self.scenario = scenario
        self.url = url
        self.run_id = uuid.uuid4().hex[:6]
        self.batches: dict[str, Batch] = {}
        self.end = 0.0  # monotonic: when the load stops
        self.tasks: set[asyncio.Task[None]] = set()
        self.retry_until = float("inf")
        per_batch = max(1, scenario.samples_per_s // scenario.bulk_batches_per_s)
        self.bulk_body = orjson.dumps(
            [
                {"name": METRIC, "value": BULK_VALUE, "labels": {"host": f"bulk-{n % 50}"}}
                for n in range(per_batch)
            ]
        )
        self.bulk_size = per_batch
        self.started_ms = int(time.time() * 1000)
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LoadGenerator:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64),
            timeout=aiohttp.ClientTimeout(total=15, sock_connect=2),
            headers={"Content-Type": "application/json", **ADMIN_HEADERS},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    def critical_batches(self) -> list[Batch]:
        return [b for b in self.batches.values() if b.series is not None]

    async def run(self, duration_s: float) -> None:
        """Bulk and critical batches on their own clocks until ``duration_s`` has passed
        (or later, when ``extend_to`` moved the end)."""
        self.end = time.monotonic() + duration_s
        await asyncio.gather(
            self._every(1 / self.scenario.bulk_batches_per_s, self._bulk),
            self._every(self.scenario.critical_every_s, self._critical),
        )

    def extend_to(self, at: float) -> None:
        """Keep loading until ``at`` at least: a kill that came late (a slow restart before
        it) still has samples after it to show paging resumed."""
        self.end = max(self.end, at)

    async def _every(self, period: float, send: Callable[[int], None]) -> None:
        next_at = time.monotonic()
        for n in itertools.count():
            now = time.monotonic()
            if now >= self.end:
                return
            send(n)
            next_at = max(next_at + period, now - 1.0)  # catch up, but never in a flood
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def _bulk(self, n: int) -> None:
        if n % 2:
            # a stamp of its own makes each body unique: equal bodies are one batch
            stamp = self.started_ms + n
            body = snappy(
                write_request(
                    ({"__name__": METRIC, "host": f"bulk-{h}", "via": "rw"}, [(BULK_VALUE, stamp)])
                    for h in range(self.bulk_size)
                )
            )
            self._send(f"{self.run_id}-r{n}", body, self.bulk_size, None, remote_write=True)
        else:
            self._send(f"{self.run_id}-b{n}", self.bulk_body, self.bulk_size, None)

    def _critical(self, n: int) -> None:
        series = f"{self.run_id}-c{n}"
        body = orjson.dumps(
            [{"name": METRIC, "value": CRITICAL_VALUE, "labels": {"series": series}}]
        )
        self._send(f"{self.run_id}-k{n}", body, 1, series)

    def _send(
        self, key: str, body: bytes, samples: int, series: str | None, remote_write: bool = False
    ) -> None:
        batch = Batch(key, samples, series, time.monotonic(), remote_write=remote_write)
        self.batches[key] = batch
        task = asyncio.create_task(self._post_until_accepted(batch, body))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _post_until_accepted(self, batch: Batch, body: bytes) -> None:
        assert self.session is not None
        if batch.remote_write:
            path, headers, accepted = REMOTE_WRITE_PATH, REMOTE_WRITE_HEADERS, 204
        else:
            path, headers, accepted = METRICS_PATH, {"Idempotency-Key": batch.key}, 202
        backoff = 0.1
        while time.monotonic() < self.retry_until:
            batch.attempts += 1
            delay = backoff
            try:
                async with self.session.post(
                    self.url() + path, data=body, headers=headers
                ) as response:
                    await response.read()
                    batch.statuses[str(response.status)] += 1
                    if response.status == accepted:
                        batch.accepted_at = time.monotonic()
                        return
                    if response.status not in RETRY_STATUSES:
                        batch.rejected = f"{response.status}: {(await response.text())[:200]}"
                        return
                    if response.status == 429:
                        delay = float(response.headers.get("Retry-After", "1"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                batch.statuses[type(exc).__name__] += 1
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, 1.0)

    async def drain(self, timeout: float) -> None:
        """Let every batch in flight finish its retries, for at most ``timeout`` seconds."""
        self.retry_until = time.monotonic() + timeout
        if self.tasks:
            # a request under way when retrying stops still gets its client time-out
            await asyncio.wait(set(self.tasks), timeout=timeout + 16)
