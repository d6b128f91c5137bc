"""Detection-to-page latency: from POSTing a sample that crosses a critical threshold to
the webhook carrying its AlertFired arriving, under steady background load.

Vigil must be running at --url with a config that has the rule and a webhook channel
pointing at this script's receiver; ``--print-config`` prints that YAML. Each trial
uses a fresh label set (``{run, trial}``) so it opens a new alert, and is followed by
a recovering sample that resolves it.

    python bench/e2e_latency.py --print-config --receiver-port 9911 >> vigil.yaml
    vigil up --config vigil.yaml &
    python bench/e2e_latency.py --receiver-port 9911 --trials 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from auth import add_key_argument, auth_headers

METRICS_PATH = "/api/monitoring/metrics"
HOOK_PATH = "/vigil-webhook"
RULE_NAME = "BenchLatency"


def config_snippet(metric: str, threshold: float, receiver_url: str, paging: bool = False) -> str:
    snippet = (
        "rules:\n"
        f"  - name: {RULE_NAME}\n"
        f"    metric: {metric}\n"
        f"    critical: {threshold}\n"
        "channels:\n"
        "  - name: bench-receiver\n"
        "    type: webhook\n"
        f"    url: {receiver_url}\n"
        "    events: [AlertFired]\n"
    )
    if not paging:
        return snippet
    # routing, grouping (one group per trial, so no trial waits for another's interval)
    # and an escalation policy whose first step pages a second channel at once
    return snippet + (
        "  - name: bench-pager\n"
        "    type: webhook\n"
        f"    url: {receiver_url}\n"
        "    events: [EscalationStepFired]\n"
        "route:\n"
        "  group_by: [rule, trial]\n"
        "  group_interval: 30s\n"
        "  routes:\n"
        f"    - matchers: ['severity=\"critical\"', 'rule=\"{RULE_NAME}\"']\n"
        "      escalation_policy: bench\n"
        "escalation_policies:\n"
        "  - name: bench\n"
        "    steps:\n"
        "      - notify: [{channel: bench-pager}]\n"
        "      - delay: 1h\n"
        "        notify: [{channel: bench-pager}]\n"
    )


@dataclass
class Receiver:
    """Resolves the future of the trial whose AlertFired arrives."""

    run_id: str
    waiting: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    received: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        self.received += 1
        try:
            body: dict[str, Any] = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.Response(status=400)
        labels = (body.get("alert") or {}).get("labels") or {}
        if body.get("event") == "AlertFired" and labels.get("run") == self.run_id:
            future = self.waiting.get(str(labels.get("trial")))
            if future is not None and not future.done():
                future.set_result(arrived)
        return web.Response(status=200)


@dataclass
class BackgroundLoad:
    sent: int = 0
    failures: int = 0


async def background_load(
    session: aiohttp.ClientSession, url: str, rate: int, metric: str, load: BackgroundLoad
) -> None:
    """``rate`` samples/s below any threshold, in 20 batches a second."""
    if rate <= 0:
        return
    per_batch = max(1, rate // 20)
    body = orjson.dumps(
        [
            {"name": metric, "value": 1.0, "labels": {"series": str(n % 100)}}
            for n in range(per_batch)
        ]
    )
    headers = {"Content-Type": "application/json"}
    next_at = time.monotonic()
    while True:
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status == 202:
                    load.sent += per_batch
                else:
                    load.failures += 1
        except (aiohttp.ClientError, TimeoutError):
            load.failures += 1
        next_at += 1 / 20
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def post_sample(
    session: aiohttp.ClientSession, url: str, metric: str, value: float, labels: dict[str, str]
) -> None:
    body = orjson.dumps([{"name": metric, "value": value, "labels": labels}])
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
        await r.read()
        if r.status != 202:
            raise RuntimeError(f"POST {url} answered {r.status}")


def percentile(sorted_values: list[float], p: float) -> float:
    index = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def run(args: argparse.Namespace) -> int:
    run_id = uuid.uuid4().hex[:8]
    receiver = Receiver(run_id)
    app = web.Application()
    app.router.add_post(HOOK_PATH, receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.receiver_host, args.receiver_port).start()
    print(f"webhook receiver on http://{args.receiver_host}:{args.receiver_port}{HOOK_PATH}")

    metrics_url = args.url.rstrip("/") + METRICS_PATH
    latencies: list[float] = []
    missed = 0
    load = BackgroundLoad()
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30), headers=auth_headers(args.key)
    ) as session:
        background = asyncio.create_task(
            background_load(
                session, metrics_url, args.background_rate, args.background_metric, load
            )
        )
        await asyncio.sleep(args.warmup)
        load_started, load_before = time.monotonic(), load.sent
        try:
            for trial in range(args.trials):
                labels = {"run": run_id, "trial": str(trial)}
                arrival = asyncio.get_running_loop().create_future()
                receiver.waiting[str(trial)] = arrival
                started = time.perf_counter()
                await post_sample(session, metrics_url, args.metric, args.threshold + 5, labels)
                try:
                    arrived = await asyncio.wait_for(arrival, args.trial_timeout)
                    latencies.append((arrived - started) * 1000)
                except TimeoutError:
                    missed += 1
                await post_sample(session, metrics_url, args.metric, 0.0, labels)
                await asyncio.sleep(args.gap)
        finally:
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
    load_elapsed = time.monotonic() - load_started
    await runner.cleanup()

    print(f"trials {args.trials}, missed {missed} (no webhook within {args.trial_timeout} s)")
    print(
        f"background load {(load.sent - load_before) / load_elapsed:,.0f} samples/s "
        f"(target {args.background_rate:,}), failed POSTs {load.failures}"
    )
    if not latencies:
        print("no webhook arrived: is the config snippet (--print-config) loaded?")
        return 1
    ordered = sorted(latencies)
    print(
        "sample -> webhook latency ms: "
        f"p50 {percentile(ordered, 50):.1f}  p90 {percentile(ordered, 90):.1f}  "
        f"p99 {percentile(ordered, 99):.1f}  max {ordered[-1]:.1f}  "
        f"mean {statistics.fmean(ordered):.1f}"
    )
    return 0 if missed == 0 else 2


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_key_argument(parser)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="Vigil gateway base URL")
    parser.add_argument(
        "--receiver-port",
        type=int,
        default=0,
        help="port of the webhook receiver; the Vigil config must point at it (0: pick one, "
        "only useful with --print-config)",
    )
    parser.add_argument("--receiver-host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--receiver-url",
        default="",
        help="URL Vigil should call, if not http://<receiver-host>:<port>/... "
        "(e.g. http://host.docker.internal:9911/vigil-webhook under compose)",
    )
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--threshold", type=float, default=90.0, help="the rule's critical level")
    parser.add_argument("--metric", default="bench_latency_value")
    parser.add_argument("--background-rate", type=int, default=10_000, help="samples/s")
    parser.add_argument("--background-metric", default="bench_background_value")
    parser.add_argument("--trial-timeout", type=float, default=5.0, help="seconds per trial")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between trials")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before trials")
    parser.add_argument(
        "--print-config", action="store_true", help="print the vigil.yaml snippet and exit"
    )
    parser.add_argument(
        "--paging",
        action="store_true",
        help="with --print-config: add a routing tree, grouping and an escalation policy",
    )
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    if args.receiver_port == 0:
        args.receiver_port = free_port()
    if not args.receiver_url:
        args.receiver_url = f"http://{args.receiver_host}:{args.receiver_port}{HOOK_PATH}"
    return args


def main() -> int:
    args = parse_args()
    if args.print_config:
        print(config_snippet(args.metric, args.threshold, args.receiver_url, args.paging), end="")
        return 0
    print(
        "the Vigil config needs:\n" + config_snippet(args.metric, args.threshold, args.receiver_url)
    )
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
