"""Chaos figures: recovery time per kill and sample → page latency while parts are killed.

Runs the scenario of ``tests/system/test_chaos.py`` (its harness is
``tests/system/chaos/``), longer and configurable: ``vigil up`` on a fresh data dir,
bulk samples plus a unique critical series every 20 ms, and SIGKILLs of nats-server, each
service and the supervisor, spaced across the run. It prints the counts (accepted =
stored, series = alerts = incidents = pages) and the figures for docs/benchmarks.md.

    .venv/bin/python bench/chaos.py --duration 300 --rounds 5
    .venv/bin/python bench/chaos.py --targets gateway,alerts,notifier --rounds 10
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.system.chaos import TARGETS, Scenario, run_chaos


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--rounds", type=int, default=3, help="kills of each target")
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help=f"comma-separated, from {', '.join(TARGETS)}",
    )
    parser.add_argument("--rate", type=int, default=2000, help="bulk samples/s")
    parser.add_argument("--critical-every", type=float, default=0.02, help="seconds")
    parser.add_argument("--settle-timeout", type=float, default=120.0, help="seconds")
    parser.add_argument("--workdir", type=Path, help="keep the data dir here (default: temp)")
    args = parser.parse_args(argv)
    args.targets = tuple(t for t in args.targets.split(",") if t)
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    return args


async def main_async(args: argparse.Namespace, workdir: Path) -> int:
    scenario = Scenario(
        duration_s=args.duration,
        samples_per_s=args.rate,
        critical_every_s=args.critical_every,
        rounds=args.rounds,
        targets=args.targets,
        settle_timeout_s=args.settle_timeout,
    )
    outcome = await run_chaos(scenario, workdir)
    print(outcome.figures())
    problems = outcome.problems()
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


def main() -> int:
    args = parse_args()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(main_async(args, args.workdir))
    with tempfile.TemporaryDirectory(prefix="vigil-chaos-") as tmp:
        return asyncio.run(main_async(args, Path(tmp)))


if __name__ == "__main__":
    raise SystemExit(main())
