"""Detection-to-page latency: from POSTing a sample that crosses a critical threshold to
the webhook carrying its AlertFired arriving, under steady background load.

Vigil must be running at --url with a config that has the rule and a webhook channel
pointing at this script's receiver; ``--print-config`` prints that YAML. Each trial
uses a fresh label set (``{run, trial}``) so it opens a new alert, and is followed by
a recovering sample that resolves it.

    python bench/e2e_latency.py --print-config --receiver-port 9911 >> vigil.yaml
    vigil up --config vigil.yaml &
    python bench/e2e_latency.py --receiver-port 9911 --trials 200

With ``--rules N`` (both calls) the config also loads N rules over the background load's
series -- thresholds, 5 m window averages and absence rules in turn, none of which
crosses -- and the background spreads over ``--background-metrics`` metrics of 40
series each, so every background sample meets rules as a fleet's would.
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


SERIES_PER_METRIC = 40
FLEET_RULE_KINDS = (
    "    critical: 1000000\n",
    "    function: avg\n    window: 5m\n    critical: 1000000\n",
    "    absent_for: 10m\n    absent_by: [series]\n",
)


def fleet_rules(count: int, metric: str, metrics: int) -> str:
    """``count`` rules over the background's metrics; none fires under the load."""
    return "".join(
        f"  - name: BenchFleet{n}\n    metric: {background_name(metric, n % metrics, metrics)}\n"
        f"    matchers: ['series=~\"[0-9]+\"']\n" + FLEET_RULE_KINDS[n % len(FLEET_RULE_KINDS)]
        for n in range(count)
    )


def background_name(metric: str, index: int, metrics: int) -> str:
    return metric if metrics <= 1 else f"{metric}_{index}"


def config_snippet(
    metric: str,
    threshold: float,
    receiver_url: str,
    paging: bool = False,
    rules: int = 0,
    background_metric: str = "",
    background_metrics: int = 1,
) -> str:
    snippet = (
        "rules:\n"
        f"  - name: {RULE_NAME}\n"
        f"    metric: {metric}\n"
        f"    critical: {threshold}\n"
        + fleet_rules(rules, background_metric, background_metrics)
        + "channels:\n"
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
    session: aiohttp.ClientSession,
    url: str,
    rate: int,
    metric: str,
    load: BackgroundLoad,
    metrics: int = 1,
) -> None:
    """``rate`` samples/s below any threshold, in 20 batches a second, over ``metrics``
    metrics of ``SERIES_PER_METRIC`` series (100 series of one metric when 1)."""
    if rate <= 0:
        return
    per_batch = max(1, rate // 20)
    series = [
        (background_name(metric, m, metrics), str(n))
        for m in range(metrics)
        for n in range(SERIES_PER_METRIC if metrics > 1 else 100)
    ]
    bodies = []
    for start in range(0, max(len(series), per_batch), per_batch):
        picked = [series[(start + n) % len(series)] for n in range(per_batch)]
        bodies.append(
            orjson.dumps(
                [{"name": name, "value": 1.0, "labels": {"series": s}} for name, s in picked]
            )
        )
    headers = {"Content-Type": "application/json"}
    next_at = time.monotonic()
    turn = 0
    while True:
        body = bodies[turn % len(bodies)]
        turn += 1
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
                session,
                metrics_url,
                args.background_rate,
                args.background_metric,
                load,
                args.background_metrics,
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
    parser.add_argument(
        "--background-metrics", type=int, default=1, help="metrics the background spreads over"
    )
    parser.add_argument("--rules", type=int, default=0, help="extra rules over the background")
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
    snippet = config_snippet(
        args.metric,
        args.threshold,
        args.receiver_url,
        args.paging,
        args.rules,
        args.background_metric,
        args.background_metrics,
    )
    if args.print_config:
        print(snippet, end="")
        return 0
    print(f"the Vigil config needs the snippet of --print-config ({len(snippet)} bytes)")
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
