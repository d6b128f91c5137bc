"""Selected metrics forwarded to DataDog as series (``POST /api/v2/series``).

Opt-in per channel (its ``metrics`` list): a DataDog account is billed per custom
metric, so nothing is sent that was not named. Forwarding is a copy, never on the
paging path: samples wait in a bounded buffer and go out in batches every
``interval_s``; while DataDog is unreachable the oldest samples are dropped (and
counted) rather than memory growing, since a monitoring copy that arrives hours late
is worth less than a notifier that stays small.

Wiring: a METRICS consumer calls ``add_samples(event.samples, event.received_at)`` for
each ``SamplesIngested`` and the service runs ``run_forever()`` as a background task.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from services.notifier.channels.datadog import auth_headers
from services.notifier.channels.http import outbound_errors, raise_for_status
from shared import outbound
from shared.channelconfig import DatadogChannel
from shared.errors import PermanentDeliveryError, TransientDeliveryError
from shared.events.metrics import Sample

log = logging.getLogger(__name__)

# DataDog's series types: 0 unspecified, 1 count, 2 rate, 3 gauge. Vigil's samples are
# point-in-time values.
GAUGE = 3
DEFAULT_CAPACITY = 50_000
DEFAULT_BATCH = 1_000  # points per request: far below the API's 500 kB per payload
DEFAULT_INTERVAL_S = 10.0
HOST_LABELS = ("host", "instance")
MAX_TAG_CHARS = 200
_NOT_IN_METRIC_NAME = re.compile(r"[^A-Za-z0-9_.]")


@dataclass(frozen=True)
class Point:
    metric: str
    tags: tuple[str, ...]
    host: str | None
    timestamp: int
    value: float


def metric_name(name: str) -> str:
    """DataDog names allow letters, digits, ``_`` and ``.``; Prometheus's ``:`` is not."""
    return _NOT_IN_METRIC_NAME.sub("_", name)


def tags_for(labels: Mapping[str, str], extra: Iterable[str] = ()) -> tuple[str, ...]:
    tags = [*extra, *(f"{k}:{v}" for k, v in sorted(labels.items()) if k not in HOST_LABELS)]
    return tuple(tag[:MAX_TAG_CHARS] for tag in tags)


def host_of(labels: Mapping[str, str]) -> str | None:
    for name in HOST_LABELS:
        if labels.get(name):
            return labels[name]
    return None


def series_payload(points: Iterable[Point]) -> dict[str, Any]:
    """The documented v2 body: one series per (metric, tags, host), its points in order."""
    series: dict[tuple[str, tuple[str, ...], str | None], dict[str, Any]] = {}
    for point in points:
        key = (point.metric, point.tags, point.host)
        entry = series.get(key)
        if entry is None:
            entry = series[key] = {
                "metric": point.metric,
                "type": GAUGE,
                "points": [],
                "tags": list(point.tags),
            }
            if point.host is not None:
                entry["resources"] = [{"name": point.host, "type": "host"}]
        entry["points"].append({"timestamp": point.timestamp, "value": point.value})
    return {"series": list(series.values())}


class SeriesExporter:
    """The buffer and the flush for one DataDog channel."""

    def __init__(
        self,
        channel: DatadogChannel,
        session: aiohttp.ClientSession,
        *,
        capacity: int = DEFAULT_CAPACITY,
        batch_size: int = DEFAULT_BATCH,
        interval_s: float = DEFAULT_INTERVAL_S,
    ):
        self.channel = channel
        self.session = session
        self.selected = frozenset(channel.metrics)
        self.capacity = capacity
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.buffer: deque[Point] = deque()
        self.dropped = 0  # oldest points pushed out while the buffer was full
        self.rejected = 0  # points DataDog refused for good (bad key, bad payload)
        self.sent = 0
        self.last_error: str | None = None

    # --- taking samples -----------------------------------------------------------

    def add(
        self, name: str, labels: Mapping[str, str], value: float, ts: float | None = None
    ) -> bool:
        """Buffer one sample when its metric is selected; True when it was."""
        if name not in self.selected:
            return False
        if len(self.buffer) >= self.capacity:
            self.buffer.popleft()
            self.dropped += 1
        self.buffer.append(
            Point(
                metric=metric_name(name),
                tags=tags_for(labels, self.channel.tags),
                host=host_of(labels),
                timestamp=int(time.time() if ts is None else ts),
                value=float(value),
            )
        )
        return True

    def add_samples(self, samples: Iterable[Sample], received_at: float) -> int:
        """A ``SamplesIngested`` batch; samples without a timestamp take ``received_at``."""
        if not self.selected:
            return 0
        taken = 0
        for sample in samples:
            ts = sample.get("timestamp")
            taken += self.add(
                sample["name"],
                sample.get("labels") or {},
                sample["value"],
                received_at if ts is None else ts,
            )
        return taken

    # --- sending ------------------------------------------------------------------

    async def post(self, points: list[Point]) -> None:
        body = orjson.dumps(series_payload(points))
        headers = {"Content-Type": "application/json", **auth_headers(self.channel)}
        url = self.channel.api_url.rstrip("/") + "/api/v2/series"
        timeout_s = self.channel.timeout_s
        async with (
            outbound_errors(timeout_s),
            outbound.request(
                self.session, "POST", url, data=body, headers=headers, timeout_s=timeout_s
            ) as response,
        ):
            await response.content.read(64 * 1024)
            status, retry_after = response.status, response.headers.get("Retry-After")
        raise_for_status(status, retry_after)

    async def flush(self) -> int:
        """Send what is buffered, batch by batch; the number of points accepted.

        A transient failure puts the batch back (keeping the newest when the buffer
        filled meanwhile) and stops until the next flush; a permanent one drops it.
        """
        accepted = 0
        while self.buffer:
            batch = [self.buffer.popleft() for _ in range(min(self.batch_size, len(self.buffer)))]
            try:
                await self.post(batch)
            except TransientDeliveryError as exc:
                self.last_error = exc.message
                room = self.capacity - len(self.buffer)
                kept = batch[len(batch) - room :] if room < len(batch) else batch
                self.dropped += len(batch) - len(kept)
                self.buffer.extendleft(reversed(kept))
                break
            except PermanentDeliveryError as exc:
                self.last_error = exc.message
                self.rejected += len(batch)
                log.warning(
                    "DataDog refused a batch of series; dropped",
                    extra={"channel": self.channel.name, "error": exc.message},
                )
                continue
            accepted += len(batch)
            self.sent += len(batch)
            self.last_error = None
        return accepted

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()

    def status(self) -> dict[str, Any]:
        """Figures for the notifier's heartbeat."""
        return {
            "buffered": len(self.buffer),
            "sent": self.sent,
            "dropped": self.dropped,
            "rejected": self.rejected,
            "last_error": self.last_error,
        }
