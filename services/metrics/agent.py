"""The host agent: samples CPU, memory, disk, network, load and top processes with psutil,
and pushes them to Vigil over NATS or through the gateway's HTTP API.

Overhead matters more than completeness here (the floor is < 0.5 % of one core and
< 40 MB RSS at a 10 s interval), so every reading is the cheapest psutil offers:
``cpu_percent(interval=None)`` against the previous call, one pass over the
processes asking only for the attributes used, rates from the previous collection.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import socket
import ssl
import time
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import orjson
import psutil

from shared import subjects
from shared.errors import PermanentDeliveryError, TransientDeliveryError
from shared.labels import printable

if TYPE_CHECKING:
    from shared.bus import EventBus
    from shared.events import Sample

log = logging.getLogger(__name__)

TOP_PROCESSES = 5
MIN_RATE_WINDOW_S = 0.2  # shorter windows give noise, not rates
PROCESS_ATTRS = ["name", "cpu_times", "create_time", "memory_info"]
PSEUDO_FILESYSTEMS = frozenset({"squashfs", "iso9660", "udf", "overlay", "tmpfs", "devtmpfs"})
METRICS_PATH = "/api/monitoring/metrics"
SEND_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
MAX_PENDING_BATCHES = 60  # ten minutes at the default interval, then the oldest are dropped
ONCE_ATTEMPTS = 5
CONNECT_TIMEOUT_S = 5
MAX_REPLY_BYTES = 4096


@dataclass(frozen=True)
class IoCounters:
    at: float  # monotonic seconds
    disk_read: int
    disk_write: int
    net_recv: int
    net_sent: int


def _io_counters() -> IoCounters | None:
    disk = psutil.disk_io_counters(perdisk=False)
    nics = psutil.net_io_counters(pernic=True)
    if disk is None:
        return None
    external = [c for name, c in nics.items() if name != "lo"]
    return IoCounters(
        at=time.monotonic(),
        disk_read=disk.read_bytes,
        disk_write=disk.write_bytes,
        net_recv=sum(c.bytes_recv for c in external),
        net_sent=sum(c.bytes_sent for c in external),
    )


def _rate(now: int, before: int, seconds: float) -> float:
    """Bytes per second; a counter that went backwards (reset, wrap) counts as zero."""
    return max(0, now - before) / seconds


def real_mounts() -> list[str]:
    """Mount points of real block devices, one per device (bind mounts repeat a device)."""
    by_device: dict[str, str] = {}
    for part in psutil.disk_partitions(all=False):
        if part.fstype in PSEUDO_FILESYSTEMS or part.mountpoint.startswith("/snap/"):
            continue
        known = by_device.get(part.device)
        if known is None or len(part.mountpoint) < len(known):
            by_device[part.device] = part.mountpoint
    return sorted(by_device.values())


@dataclass
class ProcessReading:
    pid: int
    name: str
    cpu_percent: float | None
    rss: int


@dataclass
class HostCollector:
    """Keeps the previous readings that CPU percentages and byte rates are measured against."""

    host: str = field(default_factory=socket.gethostname)
    top: int = TOP_PROCESSES
    _io: IoCounters | None = field(default=None, init=False)
    _process_cpu: dict[tuple[int, float], tuple[float, float]] = field(
        default_factory=dict, init=False
    )

    def __post_init__(self) -> None:
        psutil.cpu_percent(interval=None)
        psutil.cpu_percent(interval=None, percpu=True)
        self._io = _io_counters()
        self.processes()

    def collect(self) -> list[Sample]:
        now = time.time()
        host = {"host": printable(self.host)}
        samples: list[Sample] = []

        def add(name: str, value: float, **labels: str) -> None:
            # a plain dict: the event models (pydantic) would double the agent's memory
            samples.append(
                {
                    "name": name,
                    "value": float(value),
                    "timestamp": now,
                    "labels": {**host, **labels},
                }
            )

        add("system_cpu_percent", psutil.cpu_percent(interval=None))
        for core, percent in enumerate(psutil.cpu_percent(interval=None, percpu=True)):
            add("system_cpu_core_percent", percent, core=str(core))
        memory = psutil.virtual_memory()
        add("system_memory_percent", memory.percent)
        add("system_memory_used_bytes", memory.used)
        add("system_swap_percent", psutil.swap_memory().percent)
        for mount in real_mounts():
            try:
                add("system_disk_percent", psutil.disk_usage(mount).percent, mount=printable(mount))
            except OSError:
                continue
        self._add_rates(add)
        load1, load5, load15 = psutil.getloadavg()
        add("system_load1", load1)
        add("system_load5", load5)
        add("system_load15", load15)
        add("system_uptime_s", now - psutil.boot_time())

        processes = self.processes()
        add("system_process_count", len(processes))
        with_cpu = [p for p in processes if p.cpu_percent is not None]
        for proc in heapq.nlargest(self.top, with_cpu, key=lambda p: p.cpu_percent or 0.0):
            add(
                "system_process_cpu_percent",
                proc.cpu_percent or 0.0,
                pid=str(proc.pid),
                process=proc.name,
            )
        for proc in heapq.nlargest(self.top, processes, key=lambda p: p.rss):
            add("system_process_memory_bytes", proc.rss, pid=str(proc.pid), process=proc.name)
        return samples

    def _add_rates(self, add: _AddSample) -> None:
        current = _io_counters()
        previous = self._io
        if current is None or previous is None:
            self._io = current
            return
        seconds = current.at - previous.at
        if seconds < MIN_RATE_WINDOW_S:
            return  # keep measuring from the previous reading
        self._io = current
        add("system_disk_read_bytes_per_s", _rate(current.disk_read, previous.disk_read, seconds))
        add(
            "system_disk_write_bytes_per_s", _rate(current.disk_write, previous.disk_write, seconds)
        )
        add("system_net_recv_bytes_per_s", _rate(current.net_recv, previous.net_recv, seconds))
        add("system_net_sent_bytes_per_s", _rate(current.net_sent, previous.net_sent, seconds))

    def processes(self) -> list[ProcessReading]:
        """One pass over /proc: CPU % per process from its CPU time since the previous pass."""
        at = time.monotonic()
        readings: list[ProcessReading] = []
        seen: dict[tuple[int, float], tuple[float, float]] = {}
        for proc in psutil.process_iter(PROCESS_ATTRS):
            info = proc.info
            memory = info.get("memory_info")
            times = info.get("cpu_times")
            percent: float | None = None
            if times is not None:
                key = (proc.pid, info.get("create_time") or 0.0)
                used = times.user + times.system
                before = self._process_cpu.get(key)
                if before is None:
                    seen[key] = (at, used)
                elif at - before[0] >= MIN_RATE_WINDOW_S:
                    seen[key] = (at, used)
                    percent = max(0.0, used - before[1]) / (at - before[0]) * 100.0
                else:
                    seen[key] = before
            readings.append(
                ProcessReading(
                    pid=proc.pid,
                    name=printable(info.get("name") or str(proc.pid)),  # any bytes at all
                    cpu_percent=percent,
                    rss=memory.rss if memory is not None else 0,
                )
            )
        self._process_cpu = seen
        return readings


class _AddSample(Protocol):
    def __call__(self, name: str, value: float, **labels: str) -> None: ...


_default_collector: HostCollector | None = None


def collect_host_samples() -> list[Sample]:
    """This host's samples now; rates and CPU figures cover the time since the previous call."""
    global _default_collector
    if _default_collector is None:
        _default_collector = HostCollector()
    return _default_collector.collect()


# --- sending -------------------------------------------------------------------


@dataclass(frozen=True)
class HostBatch:
    """One collection pass. Its id travels as the event id (NATS) or Idempotency-Key
    (HTTP), so a batch sent again after a lost reply is stored once."""

    source: str
    samples: list[Sample]
    received_at: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


class SampleSink(Protocol):
    async def send(self, batch: HostBatch) -> None:
        """Raise TransientDeliveryError to retry later, PermanentDeliveryError to drop."""

    async def close(self) -> None: ...


class NatsSink:
    """Publishes straight to METRICS; the batch's event id dedupes a retried publish.

    nats-py (and the aiohttp it pulls in) is imported only in this mode, so an
    agent posting over HTTP stays well under its memory budget.
    """

    def __init__(self, url: str):
        self.url = url
        self._bus: EventBus | None = None

    async def send(self, batch: HostBatch) -> None:
        from shared.events import SamplesIngested

        event = SamplesIngested(
            id=batch.id,
            aggregate_id=batch.source,
            samples=batch.samples,
            received_at=batch.received_at,
        )
        try:
            if self._bus is None:
                self._bus = await self._connect(batch.source)
            await self._bus.publish(subjects.samples(batch.source), event)
        except Exception as exc:  # every NATS failure here is worth another try
            raise TransientDeliveryError(f"NATS publish failed: {exc!r}") from exc

    async def _connect(self, name: str) -> EventBus:
        """Connect or fail within a deadline (nats-py alone would retry the first connect
        forever); once connected, nats-py reconnects by itself."""
        from nats.aio.client import Client

        from shared.bus import EventBus

        async def quiet(exc: Exception) -> None:
            log.warning("NATS connection trouble", extra={"error": repr(exc)[:200]})

        from shared.natsauth import AGENT_USER, env_credentials

        credentials = env_credentials(os.environ, AGENT_USER)
        auth = credentials.connect_options() if credentials is not None else {}
        nc = Client()
        try:
            await asyncio.wait_for(
                nc.connect(
                    self.url,
                    **auth,
                    name=f"vigil-{name}",
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    connect_timeout=CONNECT_TIMEOUT_S,
                    error_cb=quiet,
                ),
                CONNECT_TIMEOUT_S,
            )
        except BaseException:
            await nc.close()
            raise
        return EventBus(nc)

    async def close(self) -> None:
        if self._bus is not None:
            await self._bus.nc.close()
        self._bus = None


def pinned_tls(ca_file: str) -> ssl.SSLContext:
    """TLS that trusts exactly the certificate in ``ca_file`` (the gateway's own, which
    may be self-signed or name another host than 127.0.0.1): the certificate, not the
    name, identifies the gateway."""
    context = ssl.create_default_context(cafile=ca_file)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.check_hostname = False
    return context


async def http_post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, str]:
    """One HTTP/1.1 POST on a fresh connection; returns the status and the start of the reply.

    Raises OSError (refused, reset, timeout, not HTTP, TLS) for anything worth retrying.
    """
    target = urllib.parse.urlsplit(url)
    secure = target.scheme == "https"
    path = (target.path or "/") + (f"?{target.query}" if target.query else "")
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {target.netloc}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(
            target.hostname,
            target.port or (443 if secure else 80),
            ssl=(tls or True) if secure else None,
        )
        try:
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            status_line = await reader.readline()
            rest = await reader.read(MAX_REPLY_BYTES)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    fields = status_line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
        raise OSError(f"not an HTTP response: {status_line[:100]!r}")
    detail = rest.partition(b"\r\n\r\n")[2][:300].decode("utf-8", "replace")
    return int(fields[1]), detail


def agent_key_from_env() -> str | None:
    """The ingest key ``vigil up`` made for this agent (VIGIL_AGENT_KEY_FILE), or VIGIL_API_KEY."""
    path = os.environ.get("VIGIL_AGENT_KEY_FILE")
    if path:
        with contextlib.suppress(OSError), open(path) as source:
            return source.read().strip() or None
    return os.environ.get("VIGIL_API_KEY") or None


class GatewaySink:
    """POSTs the samples to the gateway; the batch id travels as the Idempotency-Key.

    A few lines of asyncio instead of an HTTP library: one request per interval does
    not justify the ~20 MB that importing aiohttp costs, nor a worker thread's arena.
    """

    def __init__(
        self,
        url: str,
        timeout_s: float = 10.0,
        ca_file: str | None = None,
        key: str | None = None,
    ):
        base = url.rstrip("/")
        self.url = base if base.endswith(METRICS_PATH) else base + METRICS_PATH
        self.timeout_s = timeout_s
        self.tls = pinned_tls(ca_file) if ca_file else None
        self.key = key if key is not None else agent_key_from_env()

    async def send(self, batch: HostBatch) -> None:
        body = orjson.dumps(batch.samples)
        headers = {"Content-Type": "application/json", "Idempotency-Key": batch.id}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        try:
            status, detail = await http_post(self.url, body, headers, self.timeout_s, self.tls)
        except OSError as exc:  # refused, reset, timeout, TLS
            raise TransientDeliveryError(f"POST {self.url} failed: {exc!r}") from exc
        if status < 300:
            return
        message = f"POST {self.url} answered {status}: {detail}"
        if status in (408, 429) or status >= 500:
            raise TransientDeliveryError(message)
        raise PermanentDeliveryError(message)

    async def close(self) -> None:
        return None


def open_sink(
    nats_url: str | None, gateway_url: str | None, gateway_ca: str | None = None
) -> SampleSink:
    if nats_url:
        return NatsSink(nats_url)
    if gateway_url:
        return GatewaySink(gateway_url, ca_file=gateway_ca)
    raise ValueError("the agent needs a NATS URL or a gateway URL to send to")


def host_batch(host: str, samples: list[Sample]) -> HostBatch:
    return HostBatch(source=f"agent-{host}", samples=samples)


@dataclass
class Backoff:
    delays_s: tuple[float, ...] = SEND_BACKOFF_S
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        return self.delays_s[min(self.failures, len(self.delays_s)) - 1]

    def reset(self) -> None:
        self.failures = 0


async def send_pending(sink: SampleSink, pending: deque[HostBatch], backoff: Backoff) -> float:
    """Send queued batches oldest first; returns 0, or how long to wait before retrying."""
    while pending:
        batch = pending[0]
        try:
            await sink.send(batch)
        except PermanentDeliveryError as exc:
            pending.popleft()
            log.error("batch rejected; dropped", extra={"batch_id": batch.id, "error": str(exc)})
            continue
        except Exception as exc:  # transient, or a surprise: keep the batch and retry later
            delay = backoff.next_delay()
            log.warning(
                "send failed; will retry",
                extra={
                    "batch_id": batch.id,
                    "pending": len(pending),
                    "retry_in_s": delay,
                    "error": str(exc)[:300],
                },
            )
            return delay
        pending.popleft()
        backoff.reset()
    return 0.0


async def run_agent(
    interval_s: float,
    nats_url: str | None,
    gateway_url: str | None,
    once: bool = False,
    gateway_ca: str | None = None,
) -> None:
    """Collect every ``interval_s`` and send; transient failures are retried with backoff.

    With ``once`` it collects a single batch (after a short window so CPU and rates
    mean something) and returns once it is sent, raising if it could not be.
    """
    if interval_s <= 0:
        raise ValueError("interval must be positive")
    sink = open_sink(nats_url, gateway_url, gateway_ca)
    collector = HostCollector()
    log.info(
        "agent started",
        extra={
            "host": collector.host,
            "pid": os.getpid(),
            "interval_s": interval_s,
            "target": "nats" if nats_url else "gateway",
        },
    )
    try:
        if once:
            await asyncio.sleep(min(interval_s, 1.0))
            await _send_once(sink, host_batch(collector.host, collector.collect()))
            return
        await _publish_forever(sink, collector, interval_s)
    finally:
        await sink.close()


async def _send_once(sink: SampleSink, batch: HostBatch) -> None:
    pending = deque([batch])
    backoff = Backoff()
    for _ in range(ONCE_ATTEMPTS):
        delay = await send_pending(sink, pending, backoff)
        if not pending:
            return
        await asyncio.sleep(delay)
    raise TransientDeliveryError(f"could not send the batch after {ONCE_ATTEMPTS} attempts")


async def _publish_forever(sink: SampleSink, collector: HostCollector, interval_s: float) -> None:
    pending: deque[HostBatch] = deque(maxlen=MAX_PENDING_BATCHES)
    backoff = Backoff()
    next_collect = time.monotonic() + interval_s
    retry_at = 0.0
    while True:
        now = time.monotonic()
        if now >= next_collect:
            try:
                if len(pending) == pending.maxlen:
                    log.warning(
                        "send backlog full; dropping the oldest batch",
                        extra={"batch_id": pending[0].id},
                    )
                pending.append(host_batch(collector.host, collector.collect()))
            except Exception:
                log.exception("collection failed; skipping this interval")
            next_collect += interval_s
            if next_collect <= now:  # fell behind (suspended host): do not burst
                next_collect = now + interval_s
        if pending and now >= retry_at:
            delay = await send_pending(sink, pending, backoff)
            retry_at = time.monotonic() + delay if delay else 0.0
        wake = next_collect if not pending else min(next_collect, max(retry_at, time.monotonic()))
        await asyncio.sleep(max(0.0, wake - time.monotonic()))
