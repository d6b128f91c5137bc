"""A storm of alerts to a rate-limited channel: every alert accounted for, nothing dropped.

Posts ``--alerts`` samples that each open an alert (a fresh ``host`` label each) over
``--seconds``, to a system whose channel takes ``--rate`` messages a second, and counts
what the receiver gets: messages, and the alerts each carries (its own and its digest).

    python bench/paging_storm.py --print-config --receiver-port 9912 > storm.yaml
    vigil up --no-agent --config storm.yaml &
    python bench/paging_storm.py --receiver-port 9912 --alerts 1000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from auth import add_key_argument, auth_headers

HOOK_PATH = "/storm"
RULE = "BenchStorm"


def config_snippet(receiver_url: str, rate: float) -> str:
    return (
        "rules:\n"
        f"  - name: {RULE}\n"
        "    metric: bench_storm\n"
        "    critical: 1\n"
        "channels:\n"
        "  - name: storm-receiver\n"
        "    type: webhook\n"
        f"    url: {receiver_url}\n"
        "    events: [AlertFired]\n"
        f"    rate: {rate:g}\n"
    )


@dataclass
class Receiver:
    run_id: str
    started: float = 0.0
    messages: list[float] = field(default_factory=list)  # arrival, seconds after start
    alerts: dict[str, int] = field(default_factory=dict)  # alert id -> times carried

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _count(self, document: dict[str, Any]) -> None:
        alert = document.get("alert") or {}
        if (alert.get("labels") or {}).get("run") == self.run_id:
            self.alerts[alert["id"]] = self.alerts.get(alert["id"], 0) + 1

    async def handle(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = orjson.loads(await request.read())
        self.messages.append(time.monotonic() - self.started)
        self._count(body)
        for merged in body.get("digest", []):
            self._count(merged)
        return web.Response(status=204)


async def run(args: argparse.Namespace) -> int:
    receiver = Receiver(uuid.uuid4().hex[:8])
    app = web.Application()
    app.router.add_post(HOOK_PATH, receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.receiver_port).start()
    url = args.url.rstrip("/") + "/api/monitoring/metrics"
    per_tick = max(1, args.alerts // (args.seconds * 10))
    async with aiohttp.ClientSession(headers=auth_headers(args.key)) as session:
        receiver.started = time.monotonic()
        sent = 0
        while sent < args.alerts:
            batch = [
                {
                    "name": "bench_storm",
                    "value": 5.0,
                    "labels": {"run": receiver.run_id, "host": f"h{sent + n}"},
                }
                for n in range(min(per_tick, args.alerts - sent))
            ]
            async with session.post(url, json=batch) as response:
                if response.status != 202:
                    print(f"POST answered {response.status}: {await response.text()}")
                    return 1
            sent += len(batch)
            await asyncio.sleep(max(0.0, sent / args.alerts * args.seconds - receiver.elapsed()))
        posted = receiver.elapsed()
        deadline = time.monotonic() + args.drain
        while len(receiver.alerts) < args.alerts and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    await runner.cleanup()
    doubled = sum(1 for n in receiver.alerts.values() if n > 1)
    first = receiver.messages[0] if receiver.messages else float("nan")
    print(f"alerts posted {args.alerts} in {posted:.1f} s; channel rate {args.rate:g}/s")
    print(
        f"accounted for {len(receiver.alerts)} ({args.alerts - len(receiver.alerts)} missing, "
        f"{doubled} carried twice) in {len(receiver.messages)} messages"
    )
    print(
        f"first message {first * 1000:.0f} ms after the first sample; last at "
        f"{receiver.messages[-1]:.1f} s"
        if receiver.messages
        else "no message arrived"
    )
    return 0 if len(receiver.alerts) == args.alerts else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--receiver-port", type=int, default=9912)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1.0, help="the channel's messages/s")
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait for the rest")
    parser.add_argument("--print-config", action="store_true")
    add_key_argument(parser)
    args = parser.parse_args()
    if args.print_config:
        print(config_snippet(f"http://127.0.0.1:{args.receiver_port}{HOOK_PATH}", args.rate))
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
