"""What an acknowledge costs end to end: fire N alerts (one crossing sample each, fresh
labels), then time ``POST /api/monitoring/alerts/{id}/ack`` for each, one at a time, and
print the percentiles. Run it against two builds side by side (the same machine, the same
run) to see what a change adds to the acknowledge path, e.g. authentication.

The system at --url needs a rule on --metric (``--print-config`` prints one).

    python bench/ack_latency.py --print-config > ack.yaml
    VIGIL_BOOTSTRAP_ADMIN_KEY=... vigil up --no-agent --config ack.yaml &
    python bench/ack_latency.py --key "$VIGIL_BOOTSTRAP_ADMIN_KEY" --alerts 300
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

import aiohttp
import orjson
from auth import add_key_argument, auth_headers

METRICS_PATH = "/api/monitoring/metrics"
ALERTS_PATH = "/api/monitoring/alerts"


def config_snippet(metric: str, threshold: float) -> str:
    return f"rules:\n  - name: BenchAck\n    metric: {metric}\n    critical: {threshold}\n"


def items(body: Any) -> list[dict[str, Any]]:
    """A list answer, whether bare or paged ({"items": [...]})."""
    return list(body["items"] if isinstance(body, dict) else body)


async def fire(session: aiohttp.ClientSession, base: str, args: argparse.Namespace) -> str:
    run = uuid.uuid4().hex[:8]
    samples = [
        {"name": args.metric, "value": args.threshold + 1, "labels": {"run": run, "n": str(n)}}
        for n in range(args.alerts)
    ]
    for start in range(0, len(samples), 1000):
        body = orjson.dumps(samples[start : start + 1000])
        async with session.post(
            base + METRICS_PATH, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            if response.status != 202:
                text = await response.text()
                raise SystemExit(f"POST metrics answered {response.status}: {text}")
    return run


async def firing_ids(session: aiohttp.ClientSession, base: str, run: str, want: int) -> list[str]:
    deadline = time.monotonic() + 60
    while True:
        query = {"status": "firing", "limit": "1000"}
        async with session.get(base + ALERTS_PATH, params=query) as r:
            if r.status != 200:
                raise SystemExit(f"GET alerts answered {r.status}: {await r.text()}")
            found = [a["id"] for a in items(await r.json()) if a["labels"].get("run") == run]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


def percentile(ordered: list[float], p: float) -> float:
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))]


async def run(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=30), headers=auth_headers(args.key)
    ) as session:
        run_id = await fire(session, base, args)
        ids = await firing_ids(session, base, run_id, args.alerts)
        latencies: list[float] = []
        failures = 0
        for alert_id in ids:
            started = time.perf_counter()
            async with session.post(
                f"{base}{ALERTS_PATH}/{alert_id}/ack",
                data=b"{}",
                headers={"Content-Type": "application/json"},
            ) as response:
                await response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status == 200:
                latencies.append(elapsed)
            else:
                failures += 1
    if not latencies:
        print(f"no acknowledge succeeded ({failures} failed)")
        return 1
    ordered = sorted(latencies)
    print(
        f"{args.label}acknowledge ms over {len(ordered)} alerts ({failures} failed): "
        f"p50 {percentile(ordered, 50):.2f}  p90 {percentile(ordered, 90):.2f}  "
        f"p99 {percentile(ordered, 99):.2f}  mean {statistics.fmean(ordered):.2f}"
    )
    return 0 if failures == 0 else 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_key_argument(parser)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="Vigil gateway base URL")
    parser.add_argument("--alerts", type=int, default=300, help="alerts to fire and acknowledge")
    parser.add_argument("--metric", default="bench_ack_value")
    parser.add_argument("--threshold", type=float, default=90.0)
    parser.add_argument("--label", default="", help="prefix for the printed line")
    parser.add_argument("--print-config", action="store_true", help="print the rule and exit")
    args = parser.parse_args(argv)
    if args.label:
        args.label += ": "
    return args


def main() -> int:
    args = parse_args()
    if args.print_config:
        print(config_snippet(args.metric, args.threshold), end="")
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
