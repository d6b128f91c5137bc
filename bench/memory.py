"""Resident memory of a process tree: a pid and all its descendants, summed with psutil.

Run it once with Vigil idle and once right after bench/ingest.py:

    python bench/memory.py --pid $(pgrep -f "vigil up") --label idle
    python bench/memory.py --pid $(pgrep -f "vigil up") --label "after ingest"

With several --pid options each tree is reported, then the grand total.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import psutil

MB = 1024 * 1024


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    name: str
    command: str
    rss: int


def tree_memory(pid: int) -> list[ProcessMemory]:
    """The root and every descendant still alive; processes that vanish are skipped."""
    root = psutil.Process(pid)
    found: list[ProcessMemory] = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            with proc.oneshot():
                command = " ".join(proc.cmdline())[:80] or proc.name()
                found.append(ProcessMemory(proc.pid, proc.name(), command, proc.memory_info().rss))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def report(pids: list[int], label: str) -> int:
    total = 0
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"[{label}] {stamp}")
    for pid in pids:
        processes = tree_memory(pid)
        tree_total = sum(p.rss for p in processes)
        total += tree_total
        for p in sorted(processes, key=lambda p: p.rss, reverse=True):
            print(f"  {p.pid:>7}  {p.rss / MB:>8.1f} MB  {p.command}")
        print(f"  tree of {pid}: {len(processes)} processes, {tree_total / MB:.1f} MB RSS")
    if len(pids) > 1:
        print(f"  total: {total / MB:.1f} MB RSS")
    return total


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pid", type=int, action="append", required=True, help="root of a process tree"
    )
    parser.add_argument("--label", default="snapshot", help='e.g. "idle" or "after ingest"')
    parser.add_argument("--every", type=float, default=0.0, help="repeat every N seconds (0: once)")
    parser.add_argument("--count", type=int, default=0, help="with --every: stop after N reports")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    for pid in args.pid:
        if not psutil.pid_exists(pid):
            raise SystemExit(f"no process {pid}")
    reports = 0
    while True:
        report(args.pid, args.label)
        reports += 1
        if args.every <= 0 or (args.count and reports >= args.count):
            return
        time.sleep(args.every)


if __name__ == "__main__":
    main()
