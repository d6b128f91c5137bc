"""Scraping Prometheus/OpenMetrics targets on their interval, through the outbound guard.

One loop per target, started at a stable offset within its interval (jitter that does
not move between restarts), with at most ``max_concurrent`` scrapes in flight across the
process. A scrape is bounded by its timeout (connect, headers and body together) and by
the body size limit; parsing runs in a worker thread, so a large body never stalls the
event loop the service's consumers share. Each scrape is published as one
``SamplesIngested`` batch with ``up`` and ``scrape_duration_seconds`` for the target.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from yarl import URL

from services.synthetic.exposition import ACCEPT, Parsed, parse_exposition
from shared import outbound, subjects
from shared.bus import EventBus
from shared.events import (
    MAX_BATCH_BYTES,
    MAX_BATCH_SAMPLES,
    MAX_FUTURE_S,
    Sample,
    SamplesIngested,
    derived_id,
)
from shared.outbound import OutboundGuard
from shared.scrapeconfig import ScrapeConfig

log = logging.getLogger(__name__)

SAMPLE_SOURCE = "scrape"
UP = "up"
DURATION = "scrape_duration_seconds"
SAMPLES_SCRAPED = "scrape_samples_scraped"
DEFAULT_MAX_CONCURRENT = 16
# the batch limit less room for the two target samples and the envelope
MAX_SCRAPE_SAMPLES = MAX_BATCH_SAMPLES - 3


class ScrapeFailed(Exception):
    """Why a scrape yielded no samples; the text is fixed, never bytes the target sent."""


@dataclass(frozen=True)
class Target:
    job: ScrapeConfig
    url: str

    @property
    def instance(self) -> str:
        parsed = URL(self.url)
        return f"{parsed.host}:{parsed.port}" if parsed.port is not None else str(parsed.host)

    @property
    def key(self) -> str:
        return f"{self.job.job_name}/{self.url}"

    def labels(self) -> dict[str, str]:
        return {**self.job.labels, "job": self.job.job_name, "instance": self.instance}


def targets_of(jobs: list[ScrapeConfig]) -> list[Target]:
    return [Target(job, url) for job in jobs if job.enabled for url in job.targets]


def start_offset(key: str, interval_s: float) -> float:
    """A stable spread within the interval, so targets of one job do not fire together."""
    fraction = int(derived_id("scrape-offset", key).replace("-", "")[:8], 16) / 0xFFFFFFFF
    return fraction * interval_s


async def fetch(session: aiohttp.ClientSession, target: Target) -> tuple[str, str]:
    """The body and its content type; ``ScrapeFailed`` for any failure, size included."""
    job = target.job
    headers = {"Accept": ACCEPT}
    if job.bearer_token is not None:
        headers["Authorization"] = f"Bearer {job.bearer_token.get_secret_value()}"
    try:
        async with outbound.request(
            session, "GET", target.url, timeout_s=job.timeout_s, headers=headers
        ) as response:
            if response.status != 200:
                raise ScrapeFailed(f"HTTP {response.status}")
            declared = response.content_length
            if declared is not None and declared > job.body_size_limit:
                raise ScrapeFailed(f"body over the {job.body_size_limit} byte limit")
            body = await read_capped(response.content, job.body_size_limit)
            content_type = response.headers.get("Content-Type", "text/plain")
    except ScrapeFailed:
        raise
    except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
        raise ScrapeFailed(outbound.describe_error(exc, job.timeout_s)) from exc
    return body.decode("utf-8", errors="replace"), content_type


async def read_capped(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, or ``ScrapeFailed`` as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(min(limit + 1 - size, 1 << 20)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise ScrapeFailed(f"body over the {limit} byte limit")
    return b"".join(chunks)


def parse_in_window(
    text: str, content_type: str, target: Target, started: float, max_age_s: float
) -> Parsed:
    """Samples stamped outside what the store keeps (older than the metrics retention,
    later than the clock-skew allowance) are skipped, as the JSON ingest refuses them."""
    try:
        parsed = parse_exposition(text, content_type, target.labels(), target.job.keeps, started)
    except ValueError as exc:
        raise ScrapeFailed(f"not Prometheus text or OpenMetrics: {str(exc)[:200]}") from exc
    oldest, newest = started - max_age_s, started + MAX_FUTURE_S
    kept = [s for s in parsed.samples if oldest <= (s["timestamp"] or started) <= newest]
    parsed.skipped += len(parsed.samples) - len(kept)
    parsed.samples = kept
    return parsed


class Scraper:
    """Scrapes the configured targets and publishes one batch per scrape."""

    def __init__(
        self,
        jobs: list[ScrapeConfig],
        bus: Callable[[], EventBus],
        guard: OutboundGuard,
        max_age_s: float,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        clock: Callable[[], float] = time.time,
    ):
        self.targets = targets_of(jobs)
        self._bus = bus
        self.guard = guard
        self.max_age_s = max_age_s
        self.clock = clock
        self._slots = asyncio.Semaphore(max_concurrent)
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None and self.targets:
            self._session = self.guard.session()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def scrape(self, target: Target) -> SamplesIngested:
        """Scrape once and publish; a failed scrape publishes ``up`` 0 and its duration."""
        if self._session is None:
            raise RuntimeError("the scraper's HTTP session is not open")
        async with self._slots:
            started = self.clock()
            began = time.perf_counter()
            samples: list[Sample] = []
            error = ""
            parsed = Parsed()
            try:
                text, content_type = await fetch(self._session, target)
                parsed = await asyncio.to_thread(
                    parse_in_window, text, content_type, target, started, self.max_age_s
                )
                samples = parsed.samples
                if len(samples) > MAX_SCRAPE_SAMPLES:
                    raise ScrapeFailed(
                        f"{len(samples)} samples is over the limit of {MAX_SCRAPE_SAMPLES} "
                        "per scrape; drop some with metric_relabel"
                    )
            except ScrapeFailed as exc:
                error, samples = str(exc), []
            duration = time.perf_counter() - began
            batch = self._batch(target, started, samples, duration, up=not error)
            if not error and len(batch.encode()) > MAX_BATCH_BYTES:
                error = f"the scrape is over the {MAX_BATCH_BYTES} byte batch limit"
                batch = self._batch(target, started, [], duration, up=False)
            await self._bus().publish(subjects.samples("synthetic"), batch)
        log.log(
            logging.WARNING if error else logging.DEBUG,
            "scrape failed" if error else "scraped",
            extra={
                "job": target.job.job_name,
                "target": target.url,
                "error": error,
                "samples": len(samples),
                "dropped_by_relabel": parsed.dropped_by_relabel,
                "skipped": parsed.skipped,
                "duration_s": round(duration, 4),
            },
        )
        return batch

    def _batch(
        self, target: Target, started: float, samples: list[Sample], duration: float, up: bool
    ) -> SamplesIngested:
        labels = target.labels()
        own: list[Sample] = [
            {"name": UP, "value": 1.0 if up else 0.0, "timestamp": started, "labels": labels},
            {"name": DURATION, "value": duration, "timestamp": started, "labels": labels},
            {
                "name": SAMPLES_SCRAPED,
                "value": float(len(samples)),
                "timestamp": started,
                "labels": labels,
            },
        ]
        return SamplesIngested.of_validated(
            [*samples, *own],
            id=derived_id("scrape", target.key, round(started * 1000)),
            aggregate_id=f"{SAMPLE_SOURCE}:{target.job.job_name}",
            received_at=started,
        )

    async def run_forever(self) -> None:
        if not self.targets:
            await asyncio.Event().wait()
        loops = [asyncio.create_task(self._loop(t), name=f"scrape-{t.key}") for t in self.targets]
        try:
            await asyncio.Event().wait()
        finally:
            for task in loops:
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _loop(self, target: Target) -> None:
        loop = asyncio.get_running_loop()
        interval = target.job.interval_s
        await asyncio.sleep(start_offset(target.key, interval))
        next_at = loop.time()
        while True:
            try:
                await self.scrape(target)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scrape failed to publish", extra={"target": target.url})
            next_at += interval
            now = loop.time()
            if next_at < now:  # a missed tick is skipped, never run twice to catch up
                next_at = now + interval - (now - next_at) % interval
            await asyncio.sleep(next_at - now)
