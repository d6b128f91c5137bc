"""Chaos under load: kill nats-server, each service and the supervisor while samples flow.

The harness drives a real ``vigil up`` the way a user and a careful client would:
steady bulk samples plus one unique critical series every few milliseconds, each batch
POSTed with its own ``Idempotency-Key`` and retried with that key until accepted; a real
webhook receiver checks every signature. After the kills it stops the load, waits for
the system to settle and counts what was accepted, stored, alerted, opened and paged,
the recovery time of each kill and the sample → page latency.
``tests/system/test_chaos.py`` asserts the counts; ``bench/chaos.py`` prints the figures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from tests.system.chaos.counting import ReadModels, settle
from tests.system.chaos.load import LoadGenerator
from tests.system.chaos.outcome import Outcome, dump, tally
from tests.system.chaos.pager import PageRecorder
from tests.system.chaos.scenario import NATS, SUPERVISOR, TARGETS, Scenario
from tests.system.chaos.system import Kill, LagWatch, VigilUnderTest

__all__ = ["NATS", "SUPERVISOR", "TARGETS", "Outcome", "Scenario", "run_chaos"]


async def run_chaos(
    scenario: Scenario, workdir: Path, log: Callable[[str], None] = print
) -> Outcome:
    """Start Vigil, load it, kill to plan, settle, count; always stops what it started.
    Leaves ``chaos-run.json`` (every batch, page and kill) in ``workdir``."""
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
                    if kill.at:
                        load.extend_to(kill.at + scenario.tail_s)
                    log(f"{kill.at - started:6.1f}s killed {kill.target} ({kill.pid})")

            await asyncio.gather(load.run(scenario.duration_s), chaos())
            elapsed = time.monotonic() - started
            log(f"load stopped after {elapsed:.0f} s; settling")
            models = ReadModels(vigil.data_dir)
            counts, settle_s = await settle(load, pager, models, vigil.url, scenario)
            watching.cancel()
            await asyncio.gather(*vigil.orphan_checks)
            outcome = tally(load, pager, kills, counts, elapsed, settle_s)
            outcome.worst_lag = watch.worst()
            dump(workdir / "chaos-run.json", started, load, pager, kills, watch.samples)
    finally:
        await asyncio.to_thread(vigil.stop)
        await pager.stop()
    outcome.anomalies = list(vigil.anomalies)
    outcome.leftovers = list(vigil.leftovers)
    if outcome.problems():
        outcome.anomalies.append("vigil output (last lines):\n" + vigil.output(80))
    return outcome
