"""Absence detection: how long after its deadline a series that stopped reporting pages.

Each trial is a series of its own that reports every ``--every`` seconds for a while and
then falls silent; its "no data" alert is due ``--absent-for`` seconds after the last
sample. The figure is the webhook's arrival minus that deadline, measured from *before*
the last POST was sent (so it includes the POST itself: an upper bound). Trials overlap,
started ``--stagger`` seconds apart, optionally under ``e2e_latency``'s background load.

    python bench/absence_latency.py --print-config --receiver-port 9913 > vigil.yaml
    vigil up --config vigil.yaml &
    python bench/absence_latency.py --receiver-port 9913 --trials 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from auth import add_key_argument, auth_headers
from e2e_latency import BackgroundLoad, background_load, free_port, percentile, post_sample

METRICS_PATH = "/api/monitoring/metrics"
HOOK_PATH = "/vigil-absence"
RULE_NAME = "BenchAbsent"


def config_snippet(metric: str, absent_for: float, receiver_url: str) -> str:
    return (
        "rules:\n"
        f"  - name: {RULE_NAME}\n"
        f"    metric: {metric}\n"
        f"    absent_for: {absent_for:g}s\n"
        "    absent_by: [run, trial]\n"
        "channels:\n"
        "  - name: bench-absence\n"
        "    type: webhook\n"
        f"    url: {receiver_url}\n"
        "    events: [AlertFired]\n"
    )


@dataclass
class Receiver:
    run_id: str
    arrived: dict[str, float] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        at = time.perf_counter()
        try:
            body: dict[str, Any] = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.Response(status=400)
        alert = body.get("alert") or {}
        labels = alert.get("labels") or {}
        if body.get("event") == "AlertFired" and labels.get("run") == self.run_id:
            self.arrived.setdefault(str(labels.get("trial")), at)
        return web.Response(status=200)


async def trial(
    session: aiohttp.ClientSession, url: str, args: argparse.Namespace, labels: dict[str, str]
) -> float:
    """Report for ``--reports`` rounds, then stop; returns when the last POST began."""
    last = 0.0
    for _ in range(args.reports):
        last = time.perf_counter()
        await post_sample(session, url, args.metric, 1.0, labels)
        await asyncio.sleep(args.every)
    return last


async def run(args: argparse.Namespace) -> int:
    run_id = uuid.uuid4().hex[:8]
    receiver = Receiver(run_id)
    app = web.Application()
    app.router.add_post(HOOK_PATH, receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.receiver_port).start()
    url = args.url.rstrip("/") + METRICS_PATH
    load = BackgroundLoad()
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30), headers=auth_headers(args.key)
    ) as session:
        background = asyncio.create_task(
            background_load(session, url, args.background_rate, args.background_metric, load)
        )
        tasks: dict[str, asyncio.Task[float]] = {}
        for n in range(args.trials):
            labels = {"run": run_id, "trial": str(n)}
            tasks[str(n)] = asyncio.create_task(trial(session, url, args, labels))
            await asyncio.sleep(args.stagger)
        last_posts = {name: await task for name, task in tasks.items()}
        await asyncio.sleep(args.absent_for + args.timeout)
        background.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await background
    await runner.cleanup()

    late = sorted(
        (receiver.arrived[name] - (last + args.absent_for)) * 1000
        for name, last in last_posts.items()
        if name in receiver.arrived
    )
    missed = args.trials - len(late)
    print(
        f"trials {args.trials}, absent_for {args.absent_for:g} s, missed {missed} "
        f"(no page within {args.timeout:g} s of the deadline); background "
        f"{load.sent:,} samples sent, failed POSTs {load.failures}"
    )
    if not late:
        print("no page arrived: is the config snippet (--print-config) loaded?")
        return 1
    print(
        "page after the deadline ms: "
        f"min {late[0]:.0f}  p50 {percentile(late, 50):.0f}  p90 {percentile(late, 90):.0f}  "
        f"p99 {percentile(late, 99):.0f}  max {late[-1]:.0f}  mean {statistics.fmean(late):.0f}"
    )
    early = [x for x in late if x < 0]
    if early:
        print(f"{len(early)} pages came before their deadline (earliest {late[0]:.0f} ms)")
    return 0 if missed == 0 and not early else 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_key_argument(parser)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="Vigil gateway base URL")
    parser.add_argument("--receiver-port", type=int, default=0)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--absent-for", type=float, default=5.0, help="the rule's absent_for, s")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between reports")
    parser.add_argument("--reports", type=int, default=4, help="reports before falling silent")
    parser.add_argument("--stagger", type=float, default=0.25, help="seconds between trials")
    parser.add_argument("--timeout", type=float, default=5.0, help="wait past the last deadline")
    parser.add_argument("--metric", default="bench_absence_value")
    parser.add_argument("--background-rate", type=int, default=0, help="samples/s")
    parser.add_argument("--background-metric", default="bench_background_value")
    parser.add_argument("--print-config", action="store_true")
    args = parser.parse_args(argv)
    if args.receiver_port == 0:
        args.receiver_port = free_port()
    return args


def main() -> int:
    args = parse_args()
    receiver_url = f"http://127.0.0.1:{args.receiver_port}{HOOK_PATH}"
    if args.print_config:
        print(config_snippet(args.metric, args.absent_for, receiver_url), end="")
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
