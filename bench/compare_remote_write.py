"""Vigil beside Prometheus (and VictoriaMetrics when installed), one run, one workload.

Starts each store on this machine with its own fresh data dir, then drives the same
Prometheus remote-write workload at each in turn: ``--series`` series, a sample for each
every 10 s of data time, written in order from ``--hours`` ago, in requests of
``--batch`` samples from ``--senders`` concurrent senders. The bodies are encoded before
the clock starts, so the figures are the stores', not the sender's. For each store it
prints samples/s stored (Vigil: until its metrics store has every sample, not just the
gateway's acknowledgement), then bytes per sample at rest once each has compacted what it
holds, and the ratios to Prometheus. Vigil's metrics service's resident memory is reported
idle and at its peak under the load.

    .venv/bin/python bench/compare_remote_write.py --series 10000 --hours 3
    .venv/bin/python bench/compare_remote_write.py --series 100000 --hours 0.5 --batch 5000

Needs Debian's ``prometheus`` (and optionally ``victoria-metrics``) on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.promwire import REMOTE_WRITE_HEADERS, LabelCache, WriteRequestBuilder  # noqa: E402

ADMIN_KEY = "bench-compare-admin-key-0123456789abcdef0123"
INTERVAL_MS = 10_000
STATS_PATH = "/api/monitoring/metrics/stats"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_blocks * 512
    return total


# --- the workload -------------------------------------------------------------


def workload(
    series: int, rounds: int, batch: int, start_ms: int, senders: int
) -> list[list[bytes]]:
    """Remote-write bodies per sender: round r stamps every series at start + r·10 s.

    Each sender owns every ``senders``-th series and sends its bodies in order, so no
    store sees a series' samples out of order. A third of the series are counters
    (rising by small whole steps), a third gauges with one decimal (a slow random walk,
    like temperatures or percentages), a third gauges that hold still for long stretches
    (like up/down or a configured limit): what a node_exporter fleet sends, not random
    noise no store could compress.
    """
    rng = np.random.default_rng(7)
    kinds = np.arange(series) % 3
    labels = [{"host": f"host-{n // 50:05d}", "series": str(n)} for n in range(series)]
    names = ["bench_requests_total", "bench_temperature_celsius", "bench_limit"]
    values = np.where(kinds == 0, 0.0, np.where(kinds == 1, 50.0, 100.0))
    cache = LabelCache(capacity=series + 1)
    builders = [WriteRequestBuilder(cache) for _ in range(senders)]
    bodies: list[list[bytes]] = [[] for _ in range(senders)]
    for r in range(rounds):
        ts = start_ms + r * INTERVAL_MS
        step = rng.integers(0, 20, series).astype(np.float64)
        walk = np.round(rng.normal(0, 0.3, series), 1)
        hold = np.where(rng.random(series) < 0.01, 1.0, 0.0)
        gauges = np.where(kinds == 1, np.round(values + walk, 1), values + hold)
        values = np.where(kinds == 0, values + step, gauges)
        for n in range(series):
            builder = builders[n % senders]
            builder.add(names[kinds[n]], labels[n], float(values[n]), ts)
            if len(builder) >= batch:
                bodies[n % senders].append(builder.encode())
                builders[n % senders] = WriteRequestBuilder(cache)
    for builder, own in zip(builders, bodies, strict=True):
        if len(builder):
            own.append(builder.encode())
    return bodies


# --- the stores -----------------------------------------------------------------


@dataclass
class Store(ABC):
    name: str
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        return self.url + "/api/v1/write"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @abstractmethod
    def argv(self) -> list[str]: ...

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "log.txt").open("ab")
        self.process = subprocess.Popen(
            self.argv(), stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=REPO
        )

    @abstractmethod
    async def ready(self, session: aiohttp.ClientSession) -> bool: ...

    async def stored(self, session: aiohttp.ClientSession) -> int | None:
        """Samples the store holds, where it can say; None: what it acknowledged is stored."""
        return None

    async def settle(self, session: aiohttp.ClientSession) -> None:
        """Let the store compress what it holds, as it would on its own given time."""
        return None

    def at_rest(self) -> int:
        return dir_bytes(self.data_dir)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Prometheus(Store):
    spans_3h = False

    def argv(self) -> list[str]:
        config = self.workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1h\n")
        return [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-remote-write-receiver",
            "--storage.tsdb.retention.time=30d",
        ]

    async def ready(self, session: aiohttp.ClientSession) -> bool:
        async with session.get(self.url + "/-/ready") as response:
            return response.status == 200

    async def settle(self, session: aiohttp.ClientSession) -> None:
        """Prometheus cuts a block once its head spans 3 h of data: wait for it (≤ 3 min)."""
        if not self.spans_3h:
            return
        blocks = self.data_dir
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if any((p / "meta.json").exists() for p in blocks.iterdir() if p.is_dir()):
                return
            await asyncio.sleep(2)
        print("  prometheus cut no block within 3 min: its figure is its head and WAL")


class Victoria(Store):
    def argv(self) -> list[str]:
        binary = shutil.which("victoria-metrics") or "victoria-metrics-prod"
        return [
            binary,
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.data_dir}",
            "-retentionPeriod=30d",
            "-loggerLevel=WARN",
        ]

    async def ready(self, session: aiohttp.ClientSession) -> bool:
        async with session.get(self.url + "/health") as response:
            return response.status == 200

    async def settle(self, session: aiohttp.ClientSession) -> None:
        async with session.get(self.url + "/internal/force_flush") as response:
            await response.read()
        async with session.get(self.url + "/internal/force_merge") as response:
            await response.read()
        await asyncio.sleep(10)


class Vigil(Store):
    compact_env: dict[str, str] = {}
    settle_s = 60.0

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "services.cli",
            "up",
            "--no-agent",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
        env["VIGIL_BOOTSTRAP_ADMIN_KEY"] = ADMIN_KEY
        env.update(self.compact_env)
        self.headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        return env

    async def ready(self, session: aiohttp.ClientSession) -> bool:
        async with session.get(self.url + STATS_PATH, headers=self.headers) as response:
            return response.status == 200

    async def stored(self, session: aiohttp.ClientSession) -> int | None:
        async with session.get(self.url + STATS_PATH, headers=self.headers) as response:
            if response.status != 200:
                return None
            body = await response.json()
        return int(body.get("stored_samples", 0))

    async def settle(self, session: aiohttp.ClientSession) -> None:
        """Vigil compacts hours that ended over 10 min ago on a timer (see --vigil-env): wait
        for one pass, then until the store's file stops changing."""
        await asyncio.sleep(self.settle_s)
        size = -1
        while size != (size := self.store_bytes()):  # noqa: ASYNC110 (a file, not an event)
            await asyncio.sleep(10)

    def metrics_process(self) -> psutil.Process | None:
        if self.process is None:
            return None
        with contextlib.suppress(psutil.Error):
            for proc in psutil.Process(self.process.pid).children(recursive=True):
                if proc.cmdline()[-2:] == ["run", "metrics"]:
                    return proc
        return None

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) each process of the tree has used so far."""
        used: dict[str, float] = {}
        if self.process is None:
            return used
        with contextlib.suppress(psutil.Error):
            for proc in psutil.Process(self.process.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    argv = proc.cmdline()
                    name = argv[-1] if argv[-2:-1] == ["run"] else Path(argv[0]).name
                    times = proc.cpu_times()
                    used[name] = used.get(name, 0.0) + times.user + times.system
        return used

    def store_bytes(self) -> int:
        return sum(
            p.stat().st_blocks * 512 for p in self.data_dir.glob("metrics.duckdb*") if p.is_file()
        )

    def stream_bytes(self) -> int:
        streams = list(self.data_dir.rglob("METRICS"))
        return sum(dir_bytes(p) for p in streams if p.is_dir())


# --- driving -----------------------------------------------------------------------


async def wait_ready(store: Store, session: aiohttp.ClientSession, within_s: float = 120) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            if await store.ready(session):
                return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{store.name} did not come up; see {store.workdir / 'log.txt'}")


async def send_all(
    store: Store, session: aiohttp.ClientSession, bodies: list[list[bytes]]
) -> tuple[int, int]:
    """Each sender POSTs its bodies in order; returns (throttled, failed) counts."""
    throttled = failed = 0
    headers = {**REMOTE_WRITE_HEADERS, **store.headers}

    async def sender(own: list[bytes]) -> None:
        nonlocal throttled, failed
        for body in own:
            while True:
                try:
                    async with session.post(store.write_url, data=body, headers=headers) as r:
                        await r.read()
                        if r.status < 300:
                            break
                        if r.status in (429, 503):
                            throttled += 1
                            await asyncio.sleep(float(r.headers.get("Retry-After", "0.2")))
                            continue
                        failed += 1
                        if failed <= 3:
                            print(f"  {store.name}: HTTP {r.status}: {(await r.text())[:200]}")
                        break
                except (aiohttp.ClientError, TimeoutError) as exc:
                    failed += 1
                    print(f"  {store.name}: {exc!r}")
                    await asyncio.sleep(0.2)

    await asyncio.gather(*(sender(own) for own in bodies))
    return throttled, failed


class PeakRss:
    """Samples a process's resident memory every 100 ms while the load runs."""

    def __init__(self, find: Callable[[], psutil.Process | None]):
        self.find = find
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            proc = self.find()
            if proc is not None:
                with contextlib.suppress(psutil.Error):
                    self.peak = max(self.peak, proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Figures:
    name: str
    samples: int
    seconds: float = 0.0
    at_rest: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0


async def measure(
    store: Store, bodies: list[list[bytes]], samples: int, args: argparse.Namespace
) -> Figures:
    figures = Figures(store.name, samples)
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=args.senders * 2)
    store.start()
    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await wait_ready(store, session)
            vigil = store if isinstance(store, Vigil) else None
            if vigil is not None:
                await asyncio.sleep(3)
                proc = vigil.metrics_process()
                idle = proc.memory_info().rss if proc is not None else 0
                figures.notes.append(f"metrics service RSS idle {idle / 2**20:.0f} MiB")
            before = await store.stored(session) or 0
            cpu_before = vigil.cpu_seconds() if vigil is not None else {}
            rss = PeakRss(vigil.metrics_process if vigil is not None else lambda: None)
            with rss:
                started = time.monotonic()
                throttled, failed = await send_all(store, session, bodies)
                acknowledged = time.monotonic() - started
                if vigil is not None:
                    while (await store.stored(session) or 0) - before < samples:
                        if time.monotonic() - started > args.settle_timeout:
                            figures.notes.append("not all stored within the settle timeout")
                            break
                        await asyncio.sleep(0.2)
                figures.seconds = time.monotonic() - started
            figures.notes.append(
                f"acknowledged in {acknowledged:.1f} s, {throttled} throttled, {failed} failed"
            )
            if vigil is not None:
                figures.notes.append(f"metrics service RSS peak {rss.peak / 2**20:.0f} MiB")
                cpu = vigil.cpu_seconds()
                spent = {k: v - cpu_before.get(k, 0.0) for k, v in cpu.items()}
                figures.notes.append(
                    "CPU s under load: "
                    + ", ".join(
                        f"{k} {v:.1f}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1])
                    )
                )
            await store.settle(session)
            figures.at_rest = store.at_rest()
            if vigil is not None:
                figures.notes.append(
                    f"metrics store {vigil.store_bytes() / samples:.2f} B/sample, "
                    f"METRICS stream window {vigil.stream_bytes() / samples:.2f} B/sample"
                )
    finally:
        store.stop()
    return figures


async def run(args: argparse.Namespace) -> None:
    rounds = max(1, int(args.hours * 3600_000 / INTERVAL_MS))
    start_ms = int(time.time() * 1000) - rounds * INTERVAL_MS - 60_000
    started = time.monotonic()
    bodies = workload(args.series, rounds, args.batch, start_ms, args.senders)
    samples = args.series * rounds
    mb = sum(len(b) for own in bodies for b in own) / 2**20
    requests = sum(len(own) for own in bodies)
    print(
        f"workload: {args.series:,} series x {rounds:,} points = {samples:,} samples, "
        f"{requests:,} requests of ≤{args.batch:,} ({mb:.0f} MiB snappy), "
        f"encoded in {time.monotonic() - started:.1f} s; {args.senders} senders"
    )
    root = Path(args.workdir or tempfile.mkdtemp(prefix="vigil-compare-"))
    stores: list[Store] = []
    wanted = set(args.stores.split(","))
    if "prometheus" in wanted and shutil.which("prometheus"):
        prometheus = Prometheus("prometheus", root / "prometheus")
        prometheus.spans_3h = args.hours > 3
        stores.append(prometheus)
    if "victoria-metrics" in wanted and (
        shutil.which("victoria-metrics") or shutil.which("victoria-metrics-prod")
    ):
        stores.append(Victoria("victoria-metrics", root / "victoria"))
    if "vigil" in wanted:
        vigil = Vigil("vigil", root / "vigil")
        vigil.compact_env = {"VIGIL_METRICS_COMPACTION_INTERVAL_S": "20"}
        vigil.compact_env.update(dict(kv.split("=", 1) for kv in args.vigil_env))
        stores.append(vigil)
    results = []
    for store in stores:
        print(f"-- {store.name}")
        figures = await measure(store, bodies, samples, args)
        results.append(figures)
        print(
            f"  {figures.rate:>12,.0f} samples/s stored  "
            f"{figures.at_rest / samples:>6.2f} B/sample at rest (data dir)"
        )
        for note in figures.notes:
            print(f"  {note}")
    reference = next((f for f in results if f.name == "prometheus"), None)
    print("\nstore               samples/s   B/sample   x Prometheus rate   x Prometheus size")
    for figures in results:
        rate_ratio = figures.rate / reference.rate if reference and reference.rate else 0
        size_ratio = figures.at_rest / reference.at_rest if reference and reference.at_rest else 0
        print(
            f"{figures.name:<18}{figures.rate:>11,.0f}{figures.at_rest / samples:>11.2f}"
            f"{rate_ratio:>20.2f}{size_ratio:>19.2f}"
        )
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--hours", type=float, default=3.0, help="hours of data at 10 s")
    parser.add_argument("--batch", type=int, default=2_000, help="samples per request")
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--settle-timeout", type=float, default=600.0)
    parser.add_argument(
        "--stores",
        default="prometheus,victoria-metrics,vigil",
        help="comma-separated: which of prometheus, victoria-metrics, vigil to run",
    )
    parser.add_argument("--workdir", type=Path, help="keep the stores' data here")
    parser.add_argument(
        "--vigil-env", action="append", default=[], help="NAME=VALUE for vigil up (repeatable)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(run(parse_args()))
