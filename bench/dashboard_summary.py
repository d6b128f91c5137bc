"""Read latency of the dashboard summary on a full store: sequential GETs of
/api/monitoring/health/dashboard (and of the firing-alerts and incidents lists) with
1,000,000 samples, 10,000 alerts and 1,000 open incidents stored.

Vigil must be running at --url with the rule from ``--print-config`` (no channels
needed). Seeding goes through the public API only: one warning-level sample for each
of --alerts label sets fires that many alerts, a critical-level sample for the first
--incidents of them escalates those and opens one incident each, and filler samples on
an unwatched metric top the store up to --samples. ``--skip-seed`` times an already
seeded system again.

    python bench/dashboard_summary.py --print-config > dashboard.yaml
    vigil up --no-agent --config dashboard.yaml &
    python bench/dashboard_summary.py --requests 1000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from auth import add_key_argument, auth_headers

METRICS_PATH = "/api/monitoring/metrics"
STATS_PATH = "/api/monitoring/metrics/stats"
DASHBOARD_PATH = "/api/monitoring/health/dashboard"
ALERTS_PATH = "/api/monitoring/alerts?status=firing&limit=100"
INCIDENTS_PATH = "/api/monitoring/incidents"
RULE_NAME = "BenchDashboard"
WARNING, CRITICAL = 50.0, 90.0
WARNING_VALUE, CRITICAL_VALUE = 60.0, 95.0
BATCH = 1000


def config_snippet(metric: str) -> str:
    return (
        "rules:\n"
        f"  - name: {RULE_NAME}\n"
        f"    metric: {metric}\n"
        f"    warning: {WARNING:g}\n"
        f"    critical: {CRITICAL:g}\n"
    )


@dataclass(frozen=True)
class Timing:
    path: str
    latencies_ms: list[float]
    body_bytes: int
    failures: int


# --- seeding -------------------------------------------------------------------


async def post_batch(session: aiohttp.ClientSession, url: str, body: bytes) -> None:
    """One batch, retried a few times: a lost batch would leave the seed short. A 429
    (Vigil is behind) is waited out as its Retry-After says, and is not a failure."""
    attempt = 0
    while attempt < 5:
        try:
            async with session.post(
                url, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
                if response.status == 202:
                    return
                if response.status == 429:
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                error = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = repr(exc)
        attempt += 1
        await asyncio.sleep(0.2 * attempt)
    raise RuntimeError(f"POST {url} kept failing: {error}")


def series_batches(metric: str, count: int, value: float) -> list[bytes]:
    """Label sets {"series": "0"} .. {"series": count-1}, one sample each, in batches."""
    return [
        orjson.dumps(
            [
                {"name": metric, "value": value, "labels": {"series": str(n)}}
                for n in range(start, min(start + BATCH, count))
            ]
        )
        for start in range(0, count, BATCH)
    ]


async def post_all(
    session: aiohttp.ClientSession, url: str, bodies: list[bytes], senders: int
) -> None:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def sender() -> None:
        while not queue.empty():
            await post_batch(session, url, queue.get_nowait())

    await asyncio.gather(*(sender() for _ in range(senders)))


async def get_json(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url) as response:
        body = await response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {url} answered {response.status}: {body[:200]!r}")
    parsed = orjson.loads(body)
    result = parsed.get("result") if isinstance(parsed, dict) else None
    return result if isinstance(result, dict) else parsed  # tolerate a {"result": ...} envelope


async def wait_for(
    what: str,
    probe: Callable[[], Awaitable[dict[str, Any]]],
    done: Callable[[dict[str, Any]], bool],
    describe: Callable[[dict[str, Any]], str],
    timeout: float,
) -> dict[str, Any]:
    """Poll ``probe`` until ``done``; fail loudly with the last state at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        state = await probe()
        if done(state):
            return state
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"gave up waiting for {what} after {timeout:.0f} s: {describe(state)}"
            )
        await asyncio.sleep(0.5)


def dashboard_totals(body: dict[str, Any]) -> tuple[int, int, int]:
    """(alerts not resolved, of them critical, open incidents)."""
    active = sum(int(n) for n in body.get("alerts_by_severity", {}).values())
    critical = int(body.get("alerts_by_severity", {}).get("critical", 0))
    incidents = sum(int(n) for n in body.get("open_incidents_by_status", {}).values())
    return active, critical, incidents


async def seed(session: aiohttp.ClientSession, base: str, args: argparse.Namespace) -> None:
    started = time.monotonic()
    metrics_url = base + METRICS_PATH
    await post_all(
        session, metrics_url, series_batches(args.metric, args.alerts, WARNING_VALUE), args.senders
    )
    # critical only once the warning samples are on the log: the escalation must
    # follow the firing, not race it on another sender
    await post_all(
        session,
        metrics_url,
        series_batches(args.metric, args.incidents, CRITICAL_VALUE),
        args.senders,
    )
    print(
        f"posted {args.alerts:,} warning samples and {args.incidents:,} critical samples "
        f"on {args.metric} ({time.monotonic() - started:.1f} s)"
    )

    stats = await wait_for(
        "the metrics store to catch up",
        lambda: get_json(session, base + STATS_PATH),
        lambda s: int(s.get("backlog", 0)) == 0,
        lambda s: f"backlog {s.get('backlog')}",
        args.seed_timeout,
    )
    missing = args.samples - int(stats["stored_samples"])
    if missing > 0:
        filler = orjson.dumps(
            [
                {"name": args.filler_metric, "value": float(n % 50), "labels": {"slot": str(n)}}
                for n in range(BATCH)
            ]
        )
        batches = -(-missing // BATCH)
        filler_started = time.monotonic()
        await post_all(session, metrics_url, [filler] * batches, args.senders)
        print(
            f"posted {batches * BATCH:,} filler samples on {args.filler_metric} "
            f"({time.monotonic() - filler_started:.1f} s)"
        )
    stats = await wait_for(
        f"{args.samples:,} stored samples",
        lambda: get_json(session, base + STATS_PATH),
        lambda s: int(s.get("stored_samples", 0)) >= args.samples and int(s.get("backlog", 0)) == 0,
        lambda s: f"stored {s.get('stored_samples')}, backlog {s.get('backlog')}",
        args.seed_timeout,
    )
    print(f"{int(stats['stored_samples']):,} samples stored at {time.monotonic() - started:.1f} s")
    wanted = (args.alerts, args.incidents, args.incidents)
    dashboard = await wait_for(
        f"{args.alerts:,} alerts and {args.incidents:,} open incidents on the dashboard",
        lambda: get_json(session, base + DASHBOARD_PATH),
        lambda d: all(n >= m for n, m in zip(dashboard_totals(d), wanted, strict=True)),
        lambda d: "active alerts {}, critical {}, open incidents {}".format(*dashboard_totals(d)),
        args.seed_timeout,
    )
    print(f"dashboard complete at {time.monotonic() - started:.1f} s: seeded")
    report_store(stats, dashboard)


def report_store(stats: dict[str, Any], dashboard: dict[str, Any]) -> None:
    active, critical, incidents = dashboard_totals(dashboard)
    print(
        f"store: {int(stats['stored_samples']):,} samples, {active:,} active alerts "
        f"({critical:,} critical), {incidents:,} open incidents"
    )


# --- timing --------------------------------------------------------------------


async def time_gets(
    session: aiohttp.ClientSession, base: str, path: str, requests: int, warmup: int
) -> Timing:
    """Sequential GETs on one keep-alive connection, each timed to the last body byte."""
    url = base + path
    latencies: list[float] = []
    failures = 0
    body_bytes = 0
    for n in range(warmup + requests):
        started = time.perf_counter()
        async with session.get(url) as response:
            body = await response.read()
            status = response.status
        elapsed_ms = (time.perf_counter() - started) * 1000
        if n < warmup:
            continue
        if status != 200:
            failures += 1
            continue
        latencies.append(elapsed_ms)
        body_bytes = len(body)
    return Timing(path, latencies, body_bytes, failures)


def percentile(sorted_values: list[float], p: float) -> float:
    index = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def report_timing(timing: Timing) -> None:
    if not timing.latencies_ms:
        print(f"GET {timing.path}: no successful request ({timing.failures} failed)")
        return
    ordered = sorted(timing.latencies_ms)
    print(
        f"GET {timing.path}\n"
        f"    {len(ordered)} requests, {timing.failures} failed, {timing.body_bytes:,} bytes: "
        f"p50 {percentile(ordered, 50):.1f}  p90 {percentile(ordered, 90):.1f}  "
        f"p99 {percentile(ordered, 99):.1f}  max {ordered[-1]:.1f}  "
        f"mean {statistics.fmean(ordered):.1f} ms"
    )


async def run(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    connector = aiohttp.TCPConnector(limit=max(args.senders, 1) * 2)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=60),
        headers=auth_headers(args.key),
    ) as session:
        if args.skip_seed:
            report_store(
                await get_json(session, base + STATS_PATH),
                await get_json(session, base + DASHBOARD_PATH),
            )
        else:
            await seed(session, base, args)
        timings = [
            await time_gets(session, base, path, args.requests, args.warmup)
            for path in (DASHBOARD_PATH, ALERTS_PATH, INCIDENTS_PATH)
        ]
    for timing in timings:
        report_timing(timing)
    dashboard = timings[0]
    if not dashboard.latencies_ms:
        return 1
    p99 = percentile(sorted(dashboard.latencies_ms), 99)
    verdict = "within" if p99 < args.floor_ms else "OVER"
    print(f"dashboard p99 {p99:.1f} ms: {verdict} the {args.floor_ms:g} ms floor")
    return 0 if p99 < args.floor_ms and not dashboard.failures else 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_key_argument(parser)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="Vigil gateway base URL")
    parser.add_argument("--metric", default="bench_dashboard_value", help="the rule's metric")
    parser.add_argument("--filler-metric", default="bench_dashboard_filler")
    parser.add_argument("--alerts", type=int, default=10_000, help="alerts to fire")
    parser.add_argument(
        "--incidents", type=int, default=1_000, help="of those, escalated to critical"
    )
    parser.add_argument("--samples", type=int, default=1_000_000, help="samples to have stored")
    parser.add_argument("--senders", type=int, default=4, help="concurrent POSTs while seeding")
    parser.add_argument(
        "--seed-timeout", type=float, default=300.0, help="seconds to wait for each seed step"
    )
    parser.add_argument("--skip-seed", action="store_true", help="time an already seeded system")
    parser.add_argument("--requests", type=int, default=1000, help="timed GETs per path")
    parser.add_argument("--warmup", type=int, default=50, help="untimed GETs first, per path")
    parser.add_argument("--floor-ms", type=float, default=50.0, help="dashboard p99 floor")
    parser.add_argument(
        "--print-config", action="store_true", help="print the vigil.yaml snippet and exit"
    )
    args = parser.parse_args(argv)
    if args.requests < 1 or args.senders < 1 or args.warmup < 0:
        parser.error("--requests and --senders must be positive, --warmup not negative")
    if not 0 <= args.incidents <= args.alerts:
        parser.error("--incidents must be between 0 and --alerts")
    return args


def main() -> int:
    args = parse_args()
    if args.print_config:
        print(config_snippet(args.metric), end="")
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
