"""Host agent overhead: CPU share of one core and resident memory of ``vigil agent``.

Runs the agent as a user would (``vigil agent --gateway URL --interval N``) against a
running gateway for a while and reads its CPU time and RSS with psutil.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import psutil


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="gateway base URL")
    parser.add_argument("--interval", type=float, default=10.0, help="agent interval, seconds")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds to measure")
    args = parser.parse_args()

    command = [sys.executable, "-m", "services.cli", "agent", "--gateway", args.url]
    agent = subprocess.Popen(
        [*command, "--interval", str(args.interval)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        process = psutil.Process(agent.pid)
        time.sleep(min(5.0, args.interval))  # start-up (imports) is not steady-state overhead
        cpu_before = process.cpu_times()
        started = time.monotonic()
        peak_rss = 0
        while time.monotonic() - started < args.duration:
            peak_rss = max(peak_rss, process.memory_info().rss)
            time.sleep(1.0)
        cpu_after = process.cpu_times()
        elapsed = time.monotonic() - started
    finally:
        agent.terminate()
        agent.wait(10)
    used = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    print(f"agent interval {args.interval:.0f} s, measured {elapsed:.0f} s")
    print(f"cpu             {used / elapsed * 100:.3f} % of one core")
    print(f"peak rss        {peak_rss / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
