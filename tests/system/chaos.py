"""Chaos under load: kill nats-server, each service and the supervisor while samples flow.

The harness drives a real ``vigil up`` the way a user and a careful client would:
steady bulk samples plus one unique critical series every few milliseconds, each batch
POSTed with its own ``Idempotency-Key`` and retried with that key on 429, 5xx and
connection errors until accepted. A real webhook receiver checks every signature. After
the kills it stops the load, waits for the system to settle and counts what was
accepted, stored, alerted, opened and paged, the recovery time of each kill and the
sample → page latency. ``tests/system/test_chaos.py`` asserts the counts;
``bench/chaos.py`` runs it longer and prints the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
from aiohttp import web

from shared.natsserver import free_port
from shared.services import SERVICES

METRIC = "checkout_latency_ms"
CRITICAL_VALUE = 5000.0
BULK_VALUE = 100.0
SECRET = "chaos-secret"
METRICS_PATH = "/api/monitoring/metrics"
NATS = "nats"
SUPERVISOR = "supervisor"
TARGETS = (NATS, *SERVICES, SUPERVISOR)
# One round: every target once, nats-server and the supervisor between the services, so
# consecutive kills hit different parts of the path.
ROUND = ("gateway", "alerts", NATS, "metrics", "notifier", SUPERVISOR, "incidents", "synthetic")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Delivery is at least once (docs/notifications.md): a notifier that dies after the
# receiver answered but before its ledger row is written sends that page again, with the
# same X-Vigil-Delivery. Such a repeat's first copy arrived shortly before a kill that
# took the notifier down (or just after: the kill and the arrival race in this process's
# event loop); any other repeat is a defect.
NOTIFIER_DEATHS = frozenset({"notifier", SUPERVISOR})
AT_LEAST_ONCE_WINDOW_S = 5.0
ORPHAN_GRACE_S = 10.0  # a killed supervisor's children have this long to go


def config_text(receiver_port: int) -> str:
    return f"""
rules:
  - name: CheckoutLatency
    metric: {METRIC}
    warning: 500
    critical: 1000
channels:
  - name: chaos-webhook
    type: webhook
    url: http://127.0.0.1:{receiver_port}/hook
    secret: {SECRET}
    events: [AlertFired, IncidentOpened]
"""


@dataclass(frozen=True)
class Scenario:
    duration_s: float = 100.0  # load, from the first sample to the last
    samples_per_s: int = 2000  # bulk samples, below every threshold
    bulk_batches_per_s: int = 20
    critical_every_s: float = 0.02  # one unique critical series this often
    rounds: int = 3  # kills of each target
    targets: tuple[str, ...] = TARGETS
    lead_in_s: float = 4.0  # load before the first kill
    tail_s: float = 10.0  # load after the last kill
    settle_timeout_s: float = 90.0
    quiet_s: float = 3.0  # after everything arrived, wait this long for late repeats

    def plan(self) -> list[tuple[float, str]]:
        """(seconds after the load starts, target) for every kill, evenly spaced."""
        order = [t for t in ROUND if t in self.targets]
        order += [t for t in self.targets if t not in order]
        kills = [t for _ in range(self.rounds) for t in order]
        if not kills:
            return []
        window = self.duration_s - self.lead_in_s - self.tail_s
        step = window / max(1, len(kills) - 1)
        return [(self.lead_in_s + i * step, target) for i, target in enumerate(kills)]


# --- the load ------------------------------------------------------------------------


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


class LoadGenerator:
    """A careful client: one connection pool, pre-built bodies, retries with the same key."""

    def __init__(self, scenario: Scenario, url: Callable[[], str]):
        self.scenario = scenario
        self.url = url
        self.run_id = uuid.uuid4().hex[:6]
        self.batches: dict[str, Batch] = {}
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
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LoadGenerator:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64),
            timeout=aiohttp.ClientTimeout(total=15, sock_connect=2),
            headers={"Content-Type": "application/json"},
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
        """Bulk and critical batches on their own clocks until ``duration_s`` has passed."""
        end = time.monotonic() + duration_s
        await asyncio.gather(
            self._every(1 / self.scenario.bulk_batches_per_s, end, self._bulk),
            self._every(self.scenario.critical_every_s, end, self._critical),
        )

    async def _every(self, period: float, end: float, send: Callable[[int], None]) -> None:
        next_at = time.monotonic()
        for n in itertools.count():
            now = time.monotonic()
            if now >= end:
                return
            send(n)
            next_at = max(next_at + period, now - 1.0)  # catch up, but never in a flood
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def _bulk(self, n: int) -> None:
        self._send(f"{self.run_id}-b{n}", self.bulk_body, self.bulk_size, None)

    def _critical(self, n: int) -> None:
        series = f"{self.run_id}-c{n}"
        body = orjson.dumps(
            [{"name": METRIC, "value": CRITICAL_VALUE, "labels": {"series": series}}]
        )
        self._send(f"{self.run_id}-k{n}", body, 1, series)

    def _send(self, key: str, body: bytes, samples: int, series: str | None) -> None:
        batch = Batch(key, samples, series, time.monotonic())
        self.batches[key] = batch
        task = asyncio.create_task(self._post_until_accepted(batch, body))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _post_until_accepted(self, batch: Batch, body: bytes) -> None:
        assert self.session is not None
        headers = {"Idempotency-Key": batch.key}
        backoff = 0.1
        while time.monotonic() < self.retry_until:
            batch.attempts += 1
            delay = backoff
            try:
                async with self.session.post(
                    self.url() + METRICS_PATH, data=body, headers=headers
                ) as response:
                    await response.read()
                    batch.statuses[str(response.status)] += 1
                    if response.status == 202:
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


# --- the pager -----------------------------------------------------------------------


@dataclass
class Page:
    event: str
    subject_id: str  # alert id for alert events, incident id for incident events
    alert_id: str
    series: str | None
    delivery: str
    arrived: float
    lag_s: float  # from the event's own time to its arrival here: the notifier's share


@dataclass
class PageRecorder:
    """The on-call end: checks each signature, keeps what arrived and when."""

    secret: str = SECRET
    pages: list[Page] = field(default_factory=list)
    bad_signatures: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        body = await request.read()
        expected = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Vigil-Signature", "")):
            self.bad_signatures += 1
            return web.Response(status=401, text="bad signature")
        payload = orjson.loads(body)
        alert = payload.get("alert") or {}
        incident = payload.get("incident") or {}
        self.pages.append(
            Page(
                event=payload["event"],
                subject_id=alert.get("id") or incident.get("id", ""),
                alert_id=alert.get("id") or incident.get("alert_id", ""),
                series=(alert.get("labels") or {}).get("series"),
                delivery=request.headers.get("X-Vigil-Delivery", ""),
                arrived=arrived,
                lag_s=time.time() - datetime.fromisoformat(payload["time"]).timestamp(),
            )
        )
        return web.Response(status=204)

    async def start(self) -> PageRecorder:
        self.port = free_port()
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def of(self, event: str) -> list[Page]:
        return [p for p in self.pages if p.event == event]


# --- the system ----------------------------------------------------------------------


@dataclass
class Kill:
    target: str
    planned_at: float  # seconds after the load started
    at: float = 0.0  # monotonic
    pid: int = 0
    restart_s: float | None = None  # supervisor: from the kill to "vigil is up" again
    recovery_s: float | None = None  # from the kill to the first page of a later sample
    note: str = ""


class VigilUnderTest:
    """``vigil up`` on one data dir and port, started again whenever the supervisor dies."""

    def __init__(self, workdir: Path, receiver_port: int, extra_env: dict[str, str] | None = None):
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.port = free_port()
        self.config = workdir / "vigil.yaml"
        self.config.write_text(config_text(receiver_port))
        self.env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
        self.env.update(extra_env or {})
        self.process: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.seen: dict[int, psutil.Process] = {}  # every process of every tree, for cleanup
        self.anomalies: list[str] = []
        self.leftovers: list[str] = []  # processes that outlived the supervisor that started them
        self.orphan_checks: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> float:
        """Start ``vigil up`` and wait for its "vigil is up"; returns the seconds it took."""
        started = time.monotonic()
        argv = [sys.executable, "-m", "services.cli", "up", "--port", str(self.port)]
        argv += ["--no-agent", "--data-dir", str(self.data_dir), "--config", str(self.config)]
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=Path(__file__).resolve().parents[2],
        )
        self.process = process
        up = threading.Event()
        generation = len([line for line in self.lines if line.startswith("--- start")])
        self.lines.append(f"--- start {generation + 1} (pid {process.pid})")

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                self.lines.append(line.rstrip())
                if "vigil is up" in line:
                    up.set()

        threading.Thread(target=pump, daemon=True).start()
        while not up.wait(0.1):
            if process.poll() is not None or time.monotonic() - started > timeout:
                raise RuntimeError(
                    f"vigil up did not come up (exit {process.poll()}):\n" + self.output(40)
                )
        self.remember_tree()
        return time.monotonic() - started

    def output(self, last: int = 60) -> str:
        return "\n".join(self.lines[-last:])

    def tree(self) -> list[psutil.Process]:
        if self.process is None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def remember_tree(self) -> None:
        for proc in self.tree():
            self.seen.setdefault(proc.pid, proc)

    def pid_of(self, target: str) -> int | None:
        if target == SUPERVISOR:
            return self.process.pid if self.process and self.process.poll() is None else None
        for proc in self.tree()[1:]:
            with contextlib.suppress(psutil.Error):
                argv = proc.cmdline()
                if target == NATS and argv and argv[0].endswith("nats-server"):
                    return proc.pid
                if argv[-2:] == ["run", target]:
                    return proc.pid
        return None

    async def kill(self, kill: Kill, find_timeout: float = 30.0) -> None:
        """SIGKILL the target (waiting for it to exist: it may be between restarts)."""
        deadline = time.monotonic() + find_timeout
        while (pid := self.pid_of(kill.target)) is None:
            if time.monotonic() > deadline:
                kill.note = "never found running"
                self.anomalies.append(f"{kill.target}: not running for {find_timeout:.0f} s")
                return
            await asyncio.sleep(0.2)
        self.remember_tree()
        old_tree = self.tree()
        kill.pid = pid
        kill.at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if kill.target != SUPERVISOR:
            return
        assert self.process is not None
        await asyncio.to_thread(self.process.wait)
        await self.start_again(kill)
        kill.restart_s = time.monotonic() - kill.at
        others = [p for p in old_tree if p.pid != pid]
        self.orphan_checks.append(asyncio.create_task(self._check_orphans(kill, others)))

    async def _check_orphans(self, kill: Kill, others: list[psutil.Process]) -> None:
        """Everything the dead supervisor started must go with it."""
        grace = max(0.1, kill.at + ORPHAN_GRACE_S - time.monotonic())
        _, alive = await asyncio.to_thread(psutil.wait_procs, others, grace)
        survivors = [p for p in alive if _alive(p)]
        if survivors:
            names = ", ".join(f"{_name(p)} ({p.pid})" for p in survivors)
            self.leftovers.append(
                f"{names} still running {ORPHAN_GRACE_S:.0f} s after the supervisor "
                f"({kill.pid}) was killed"
            )

    async def start_again(self, kill: Kill, within_s: float = 60.0) -> None:
        """Start again at once and, while refused, every second: as systemd would."""
        deadline = time.monotonic() + within_s
        refusals: list[str] = []
        while True:
            try:
                await asyncio.to_thread(self.start)
                break
            except RuntimeError as exc:
                refusals.append(str(exc).splitlines()[-1] if str(exc) else "exited")
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)
        if refusals:
            kill.note = f"refused {len(refusals)}x before starting (last: {refusals[-1]})"

    def stop(self) -> None:
        """Stop the current tree, then anything any earlier tree left behind."""
        self.remember_tree()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.anomalies.append("vigil up did not stop within 20 s of SIGTERM")
        leftovers = [p for p in self.seen.values() if _alive(p)]
        for proc in leftovers:
            self.leftovers.append(f"left running after stop: {_name(proc)} ({proc.pid})")
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(leftovers, timeout=5)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _name(proc: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        argv = proc.cmdline()
        if argv and argv[0].endswith("nats-server"):
            return NATS
        if "run" in argv:
            return argv[-1]
        if "up" in argv:
            return SUPERVISOR
    return "?"


class LagWatch:
    """Every durable's lag (pending + unacknowledged) every few seconds: where a backlog sits."""

    def __init__(self, url: Callable[[], str], every_s: float = 5.0):
        self.url = url
        self.every_s = every_s
        self.samples: list[tuple[float, dict[str, int]]] = []

    async def run(self, started: float) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            while True:
                health = await _get_json(session, self.url() + "/api/monitoring/health/system")
                if health is not None:
                    lags = {c["durable"]: int(c["lag"]) for c in health["consumers"]}
                    self.samples.append((round(time.monotonic() - started, 1), lags))
                await asyncio.sleep(self.every_s)

    def worst(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for _, lags in self.samples:
            for durable, lag in lags.items():
                found[durable] = max(found.get(durable, 0), lag)
        return found


# --- counting ------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the run produced; ``problems()`` lists every count that does not add up."""

    scenario: Scenario
    elapsed_s: float
    batches: int
    unsettled: list[str]  # keys never accepted
    rejected: list[str]
    samples_accepted: int
    samples_stored: int | None
    series_sent: int  # critical series whose batch was accepted
    alerts: int | None
    incidents: int | None
    series_paged: int
    series_unpaged: list[str]
    incidents_paged: int
    page_repeats: dict[str, int]  # event type -> pages beyond the first per (event, id)
    unexplained_repeats: list[str]  # repeats outside the at-least-once window
    notification_outcomes: int | None  # messages on NOTIFICATIONS: one per (event, channel)
    deliveries: int  # distinct X-Vigil-Delivery ids paged
    bad_signatures: int
    kills: list[Kill]
    latencies_ms: list[float]
    retries: Counter[str]
    anomalies: list[str]
    leftovers: list[str] = field(default_factory=list)
    worst_lag: dict[str, int] = field(default_factory=dict)  # durable -> most seen behind

    def problems(self) -> list[str]:
        found = []
        if self.unsettled:
            found.append(f"{len(self.unsettled)} batches never accepted: {self.unsettled[:5]}")
        if self.rejected:
            found.append(f"{len(self.rejected)} batches rejected: {self.rejected[:5]}")
        if self.samples_stored != self.samples_accepted:
            found.append(
                f"samples accepted {self.samples_accepted} != stored {self.samples_stored}"
            )
        if not self.series_sent == self.alerts == self.incidents == self.series_paged:
            found.append(
                f"critical series {self.series_sent}, alerts {self.alerts}, "
                f"incidents {self.incidents}, series paged {self.series_paged}"
            )
        if self.incidents_paged != self.series_sent:
            found.append(f"IncidentOpened pages for {self.incidents_paged} incidents")
        if self.unexplained_repeats:
            found.append(
                f"{len(self.unexplained_repeats)} repeated pages outside the at-least-once "
                f"window of a notifier death: {self.unexplained_repeats[:5]}"
            )
        if self.notification_outcomes != self.deliveries:
            found.append(
                f"{self.notification_outcomes} notification outcomes recorded for "
                f"{self.deliveries} deliveries"
            )
        if self.bad_signatures:
            found.append(f"{self.bad_signatures} pages with a bad signature")
        found.extend(self.leftovers)
        for kill in self.kills:
            if kill.recovery_s is None:
                found.append(f"no page after killing {kill.target} ({kill.note or 'no sample'})")
        return found

    def figures(self) -> str:
        lat = sorted(self.latencies_ms)
        lines = [
            f"chaos run: {self.elapsed_s:.0f} s of load, {len(self.kills)} kills "
            f"({', '.join(f'{t} x{n}' for t, n in Counter(k.target for k in self.kills).items())})",
            f"batches {self.batches:,} ({self.retries.total():,} answers/errors before 202: "
            f"{dict(self.retries)}); never accepted {len(self.unsettled)}, "
            f"rejected {len(self.rejected)}",
            f"samples accepted {self.samples_accepted:,}, stored {self.samples_stored}",
            f"critical series {self.series_sent:,}, alerts {self.alerts}, incidents "
            f"{self.incidents}, paged AlertFired {self.series_paged:,} / IncidentOpened "
            f"{self.incidents_paged:,}; repeated pages {self.page_repeats or 0} "
            f"(outside the at-least-once window: {len(self.unexplained_repeats)}); "
            f"outcomes recorded {self.notification_outcomes} for {self.deliveries:,} "
            f"deliveries; bad signatures {self.bad_signatures}",
        ]
        if lat:
            lines.append(
                f"sample -> page (AlertFired) ms over the run: p50 {percentile(lat, 50):.0f}, "
                f"p90 {percentile(lat, 90):.0f}, p99 {percentile(lat, 99):.0f}, "
                f"max {lat[-1]:.0f} ({len(lat):,} series)"
            )
        if self.worst_lag:
            lines.append(f"largest consumer lag seen (messages): {self.worst_lag}")
        lines.append("recovery (kill -> first page of a sample sent after it), per kill:")
        for target in dict.fromkeys(k.target for k in self.kills):
            own = [k for k in self.kills if k.target == target]
            cells = []
            for kill in own:
                cell = "no page" if kill.recovery_s is None else f"{kill.recovery_s:.1f}s"
                if kill.restart_s is not None:
                    cell += f" (up again {kill.restart_s:.1f}s)"
                if kill.note:
                    cell += f" [{kill.note}]"
                cells.append(cell)
            lines.append(f"  {target:<11} " + ", ".join(cells))
        for anomaly in self.anomalies:
            lines.append(f"anomaly: {anomaly}")
        return "\n".join(lines)


def dump(
    path: Path,
    started: float,
    load: LoadGenerator,
    pager: PageRecorder,
    kills: list[Kill],
    watch: LagWatch,
) -> None:
    """Every batch, page and kill, times in seconds after the load started: the evidence."""

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - started, 4)

    path.write_bytes(
        orjson.dumps(
            {
                "batches": [
                    [b.key, b.series, rel(b.first_sent), rel(b.accepted_at), dict(b.statuses)]
                    for b in load.batches.values()
                ],
                "pages": [
                    [
                        p.event,
                        p.subject_id,
                        p.alert_id,
                        p.series,
                        p.delivery,
                        rel(p.arrived),
                        p.lag_s,
                    ]
                    for p in pager.pages
                ],
                "kills": [[k.target, k.pid, rel(k.at), k.restart_s, k.note] for k in kills],
                "lags": watch.samples,
            }
        )
    )


def percentile(ordered: list[float], p: float) -> float:
    index = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


async def _get_json(session: aiohttp.ClientSession, url: str) -> Any:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        async with session.get(url) as response:
            if response.status == 200:
                return orjson.loads(await response.read())
    return None


async def _until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.5)


@dataclass
class Counts:
    stored: int | None = None
    alerts: int | None = None
    incidents: int | None = None
    outcomes: int | None = None


async def read_counts(session: aiohttp.ClientSession, url: str) -> Counts:
    stats = await _get_json(session, url + "/api/monitoring/metrics/stats")
    board = await _get_json(session, url + "/api/monitoring/health/dashboard")
    health = await _get_json(session, url + "/api/monitoring/health/system")
    counts = Counts()
    if health is not None:
        streams = {s["name"]: s for s in health["streams"]}
        if "NOTIFICATIONS" in streams:
            counts.outcomes = int(streams["NOTIFICATIONS"]["messages"])
    if stats is not None:
        counts.stored = int(stats["stored_samples"])
    if board is not None:
        alerts = board["alerts_by_status_and_severity"]
        counts.alerts = sum(by_severity.get("critical", 0) for by_severity in alerts.values())
        counts.incidents = int(board["open_incidents_by_severity"].get("critical", 0))
    return counts


async def settle(
    load: LoadGenerator, pager: PageRecorder, url: str, scenario: Scenario
) -> tuple[Counts, float]:
    """Wait until the store, the read models and the pager have caught up (or time out)."""
    started = time.monotonic()
    await load.drain(scenario.settle_timeout_s / 2)
    accepted = [b for b in load.batches.values() if b.accepted_at is not None]
    samples = sum(b.samples for b in accepted)
    series = {b.series for b in accepted if b.series is not None}
    counts = Counts()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def caught_up() -> bool:
            nonlocal counts
            counts = await read_counts(session, url)
            fired = {p.series for p in pager.of("AlertFired")}
            opened = {p.subject_id for p in pager.of("IncidentOpened")}
            return (
                counts.stored is not None
                and counts.stored >= samples
                and (counts.alerts or 0) >= len(series)
                and (counts.incidents or 0) >= len(series)
                and series <= fired
                and len(opened) >= len(series)
                and (counts.outcomes or 0) >= len({p.delivery for p in pager.pages})
            )

        remaining = scenario.settle_timeout_s - (time.monotonic() - started)
        await _until(caught_up, max(1.0, remaining))
        await asyncio.sleep(scenario.quiet_s)  # a late repeat would show up now
        counts = await read_counts(session, url)
    return counts, time.monotonic() - started


def repeats(pages: list[Page], kills: list[Kill]) -> tuple[dict[str, int], list[str]]:
    """Pages beyond the first per (event, id), by event type, and those not explained
    by the at-least-once window (same delivery id, first copy just before a notifier death).
    """
    deaths = [k.at for k in kills if k.target in NOTIFIER_DEATHS and k.at]
    first: dict[tuple[str, str], Page] = {}
    counted: Counter[str] = Counter()
    unexplained = []
    for page in pages:
        original = first.setdefault((page.event, page.subject_id), page)
        if original is page:
            continue
        counted[page.event] += 1
        in_window = any(-1.0 <= at - original.arrived <= AT_LEAST_ONCE_WINDOW_S for at in deaths)
        if page.delivery != original.delivery or not in_window:
            unexplained.append(
                f"{page.event} {page.subject_id}: first at {original.arrived:.2f}, "
                f"again at {page.arrived:.2f} (delivery {original.delivery} / {page.delivery})"
            )
    return dict(counted), unexplained


def tally(
    load: LoadGenerator,
    pager: PageRecorder,
    vigil: VigilUnderTest,
    kills: list[Kill],
    counts: Counts,
    elapsed_s: float,
) -> Outcome:
    batches = list(load.batches.values())
    accepted = [b for b in batches if b.accepted_at is not None]
    critical = [b for b in accepted if b.series is not None]
    fired = pager.of("AlertFired")
    first_page: dict[str, float] = {}
    for page in fired:
        if page.series is not None:
            first_page.setdefault(page.series, page.arrived)
    page_repeats, unexplained = repeats(pager.pages, kills)
    sent_at = sorted((b.first_sent, b.series) for b in load.critical_batches() if b.series)
    for kill in kills:
        later = [first_page[s] for t, s in sent_at if t >= kill.at and s in first_page]
        if kill.at and later:
            kill.recovery_s = min(later) - kill.at
    retries: Counter[str] = Counter()
    for batch in batches:
        for status, n in batch.statuses.items():
            if status != "202":
                retries[status] += n
    sent_series = {b.series for b in critical if b.series}
    return Outcome(
        scenario=load.scenario,
        elapsed_s=elapsed_s,
        batches=len(batches),
        unsettled=[b.key for b in batches if b.accepted_at is None and not b.rejected],
        rejected=[f"{b.key}: {b.rejected}" for b in batches if b.rejected],
        samples_accepted=sum(b.samples for b in accepted),
        samples_stored=counts.stored,
        series_sent=len(critical),
        alerts=counts.alerts,
        incidents=counts.incidents,
        series_paged=len(sent_series & set(first_page)),
        series_unpaged=sorted(sent_series - set(first_page))[:20],
        incidents_paged=len({p.subject_id for p in pager.of("IncidentOpened")}),
        page_repeats=page_repeats,
        unexplained_repeats=unexplained,
        notification_outcomes=counts.outcomes,
        deliveries=len({p.delivery for p in pager.pages}),
        bad_signatures=pager.bad_signatures,
        kills=kills,
        latencies_ms=[
            (first_page[b.series] - b.first_sent) * 1000 for b in critical if b.series in first_page
        ],
        retries=retries,
        anomalies=list(vigil.anomalies),
    )


async def run_chaos(
    scenario: Scenario, workdir: Path, log: Callable[[str], None] = print
) -> Outcome:
    """Start Vigil, load it, kill to plan, settle, count; always stops what it started."""
    pager = await PageRecorder().start()
    vigil = VigilUnderTest(workdir, pager.port)
    watch = LagWatch(lambda: vigil.url)
    try:
        up_s = await asyncio.to_thread(vigil.start)
        log(f"vigil up in {up_s:.1f} s at {vigil.url}")
        kills = [Kill(target, at) for at, target in scenario.plan()]
        async with LoadGenerator(scenario, lambda: vigil.url) as load:
            started = time.monotonic()
            watching = asyncio.create_task(watch.run(started))

            async def chaos() -> None:
                for kill in kills:
                    await asyncio.sleep(max(0.0, started + kill.planned_at - time.monotonic()))
                    await vigil.kill(kill)
                    log(f"{time.monotonic() - started:6.1f}s killed {kill.target} ({kill.pid})")

            await asyncio.gather(load.run(scenario.duration_s), chaos())
            elapsed = time.monotonic() - started
            log(f"load stopped after {elapsed:.0f} s; settling")
            counts, settle_s = await settle(load, pager, vigil.url, scenario)
            log(f"settled in {settle_s:.1f} s")
            watching.cancel()
            await asyncio.gather(*vigil.orphan_checks)
            outcome = tally(load, pager, vigil, kills, counts, elapsed)
            outcome.worst_lag = watch.worst()
            dump(workdir / "chaos-run.json", started, load, pager, kills, watch)
    finally:
        await asyncio.to_thread(vigil.stop)
        await pager.stop()
    outcome.anomalies = list(vigil.anomalies)
    outcome.leftovers = list(vigil.leftovers)
    if outcome.problems():
        outcome.anomalies.append("vigil output (last lines):\n" + vigil.output(80))
    return outcome
