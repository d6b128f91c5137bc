"""Escalation timer accuracy across a restart: how late a step fires after its deadline.

Each trial opens an alert whose policy pages at once (step 1) and again ``--delay``
seconds later (step 2). After step 1 arrives, the notifier is killed with SIGKILL
(``--kill``) and its supervisor starts it again; step 2 must still fire, once, close to
its deadline (measured from the POST of the sample, so the figure is conservative).

    python bench/escalation_timer.py --print-config --receiver-port 9913 > timer.yaml
    vigil up --no-agent --config timer.yaml &
    python bench/escalation_timer.py --receiver-port 9913 --trials 10 --kill
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import time
import uuid
from collections import defaultdict
from typing import Any

import aiohttp
import orjson
import psutil
from aiohttp import web
from auth import add_key_argument, auth_headers

HOOK_PATH = "/pages"
RULE = "BenchEscalation"


def config_snippet(receiver_url: str, delay_s: float) -> str:
    return (
        "rules:\n"
        f"  - name: {RULE}\n"
        "    metric: bench_escalation\n"
        "    critical: 1\n"
        "channels:\n"
        "  - name: pager\n"
        "    type: webhook\n"
        f"    url: {receiver_url}\n"
        "    events: [EscalationStepFired]\n"
        "route:\n"
        "  routes:\n"
        f"    - matchers: ['rule=\"{RULE}\"']\n"
        "      escalation_policy: timer\n"
        "escalation_policies:\n"
        "  - name: timer\n"
        "    steps:\n"
        "      - notify: [{channel: pager}]\n"
        f"      - delay: {delay_s:g}s\n"
        "        notify: [{channel: pager}]\n"
    )


def notifier_pid() -> int | None:
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if cmdline[-2:] == ["run", "notifier"]:
            return int(process.pid)
    return None


async def run(args: argparse.Namespace) -> int:
    run_id = uuid.uuid4().hex[:8]
    pages: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    arrived = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        at = time.monotonic()
        body: dict[str, Any] = orjson.loads(await request.read())
        labels = (body.get("alert") or {}).get("labels") or {}
        page = body.get("page") or {}
        if labels.get("run") == run_id:
            pages[labels["trial"]][int(page.get("step", 0))].append(at)
            arrived.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post(HOOK_PATH, handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.receiver_port).start()
    url = args.url.rstrip("/") + "/api/monitoring/metrics"
    lateness: list[float] = []
    problems: list[str] = []
    killed_at = 0.0

    async def wait_for(trial: str, step: int, within_s: float) -> bool:
        deadline = time.monotonic() + within_s
        while not pages[trial][step]:
            if time.monotonic() > deadline:
                return False
            arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), 0.1)
        return True

    async with aiohttp.ClientSession(headers=auth_headers(args.key)) as session:
        for n in range(args.trials):
            trial = str(n)
            labels = {"run": run_id, "trial": trial}
            posted = time.monotonic()
            sample = [{"name": "bench_escalation", "value": 5.0, "labels": labels}]
            async with session.post(url, json=sample) as response:
                assert response.status == 202, await response.text()
            if not await wait_for(trial, 1, 10):
                problems.append(f"trial {n}: step 1 never arrived")
                continue
            if args.kill and (pid := notifier_pid()) is not None:
                os.kill(pid, signal.SIGKILL)
                killed_at = time.monotonic()
            if not await wait_for(trial, 2, args.delay + 30):
                problems.append(f"trial {n}: step 2 never arrived")
                continue
            lateness.append((pages[trial][2][0] - (posted + args.delay)) * 1000)
            await asyncio.sleep(1.0)  # a second copy of step 2 would show up meanwhile
            if len(pages[trial][2]) > 1:
                problems.append(f"trial {n}: step 2 arrived {len(pages[trial][2])} times")
            sample[0]["value"] = 0.0
            async with session.post(url, json=sample) as response:
                await response.read()
            if args.kill:
                # the supervisor restarts a process that dies within 30 s of its start
                # later each time (crash-loop backoff): let it run that long first
                await asyncio.sleep(max(0.0, killed_at + args.stable - time.monotonic()))
    await runner.cleanup()
    kill = "with a kill -9 of the notifier between the steps" if args.kill else "no kills"
    print(f"trials {args.trials}, step 2 due {args.delay:g}s after the alert, {kill}")
    for problem in problems:
        print(problem)
    if lateness:
        ordered = sorted(lateness)
        print(
            f"step 2 after its deadline, ms: min {ordered[0]:.0f}, median "
            f"{statistics.median(ordered):.0f}, max {ordered[-1]:.0f}"
        )
    return 0 if lateness and not problems else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--receiver-port", type=int, default=9913)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--delay", type=float, default=8.0, help="step 2's delay, seconds")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the notifier each trial")
    parser.add_argument(
        "--stable",
        type=float,
        default=32.0,
        help="with --kill: seconds between kills, so the supervisor restarts at once",
    )
    parser.add_argument("--print-config", action="store_true")
    add_key_argument(parser)
    args = parser.parse_args()
    if args.print_config:
        url = f"http://127.0.0.1:{args.receiver_port}{HOOK_PATH}"
        print(config_snippet(url, args.delay))
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
