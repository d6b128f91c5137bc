"""Rule evaluation cost: samples/s through the alerts evaluator with 1,000 rules (thresholds
with matchers and overrides, window functions, ratios and absence rules) over 10,000 series.

The evaluator runs in-process, exactly as the ``alerts-evaluator`` consumer calls it
(``SampleEvaluator.handle`` per batch, absence deadlines fired as the clock passes them),
with the alert log in memory so that the figure is the evaluation, not the broker. The
batches are made before the clock starts. Every series reports every ``--interval``
seconds of simulated time; a few cross their thresholds now and then (transitions are
appended), and a few fall silent (absence fires).

    .venv/bin/python bench/rule_eval.py
    .venv/bin/python bench/rule_eval.py --metrics 250 --series-per-metric 40 --passes 30
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.alerts.handlers import EVALUATOR
from services.alerts.replay import RuleReplay
from shared import subjects
from shared.consumer import Delivery
from shared.events import Sample, SamplesIngested
from shared.ruleconfig import RuleConfig

FLOOR_SAMPLES_PER_S = 50_000
WINDOW_FUNCTIONS = ["avg", "max", "p95", "rate", "delta", "min", "sum", "p50"]
START = 1_700_000_000.0


def rules_for(metrics: int, per_metric: int) -> list[RuleConfig]:
    """``per_metric`` rules on each gauge: a threshold with matchers and an override, a
    window function, an absence rule, and (every tenth metric) a ratio with its twin."""
    rules: list[dict[str, Any]] = []
    for m in range(metrics):
        name = f"gauge_{m}"
        kinds = [
            {
                "name": f"T{m}",
                "metric": name,
                "matchers": ["env!=dev", 'mount=~"/.*"'],
                "warning": 90,
                "critical": 97,
                "overrides": [{"matchers": ['mount="/var"'], "warning": 85}],
                "annotations": {"summary": "{{ labels.host }} at {{ value }}"},
                "set_labels": {"team": f"team-{m % 7}"},
            },
            {
                "name": f"W{m}",
                "metric": name,
                "function": WINDOW_FUNCTIONS[m % len(WINDOW_FUNCTIONS)],
                "window": "5m",
                "warning": 1e6 if WINDOW_FUNCTIONS[m % len(WINDOW_FUNCTIONS)] == "sum" else 95,
                "for": "1m",
            },
            {"name": f"A{m}", "metric": name, "absent_for": "2m", "absent_by": ["host"]},
            {
                "name": f"R{m}",
                "ratio": {
                    "numerator": name,
                    "denominator": f"gauge_{(m + 1) % metrics}",
                    "over": "5m",
                },
                "warning": 1e9,
            }
            if m % 10 == 0
            else {"name": f"B{m}", "metric": name, "direction": "below", "warning": 1},
        ]
        rules.extend(kinds[:per_metric])
    return [RuleConfig.model_validate(r) for r in rules]


def make_batches(
    metrics: int, series_per_metric: int, passes: int, batch_size: int, interval: float, seed: int
) -> list[SamplesIngested]:
    """``passes`` rounds in which every series reports once, cut into batches."""
    rng = random.Random(seed)
    series = [
        (
            f"gauge_{m}",
            {"host": f"h{s}", "mount": "/var" if s % 4 == 0 else "/", "env": "prod"},
        )
        for m in range(metrics)
        for s in range(series_per_metric)
    ]
    silent = set(rng.sample(range(len(series)), k=max(1, len(series) // 1000)))
    batches: list[SamplesIngested] = []
    per_round = -(-len(series) // batch_size)
    for round_ in range(passes):
        base = START + round_ * interval
        for chunk in range(per_round):
            at = base + chunk * interval / per_round
            samples = []
            for index in range(chunk * batch_size, min(len(series), (chunk + 1) * batch_size)):
                if index in silent and round_ > passes // 3:
                    continue  # stops reporting a third of the way in
                name, labels = series[index]
                hot = rng.random() < 0.0005
                value = 99.0 if hot else rng.uniform(10, 80)
                samples.append(Sample(name=name, value=value, labels=labels))
            batches.append(SamplesIngested(aggregate_id="bench", samples=samples, received_at=at))
    return batches


async def run(args: argparse.Namespace) -> None:
    rules = rules_for(args.metrics, args.rules_per_metric)
    batches = make_batches(
        args.metrics, args.series_per_metric, args.passes, args.batch, args.interval, args.seed
    )
    total = sum(len(b.samples) for b in batches)
    replay = RuleReplay(rules, start=START)
    evaluator = replay.evaluator
    subject = subjects.samples("bench")
    kinds: dict[str, int] = {}
    for check in evaluator.engine.rules.values():
        kinds[check.kind] = kinds.get(check.kind, 0) + 1
    print(
        f"rules: {len(rules)} ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}); "
        f"series: {args.metrics * args.series_per_metric}; "
        f"samples: {total:,} in {len(batches)} batches over {args.passes} rounds "
        f"of {args.interval:g} s"
    )

    warm = args.passes // 5 or 1
    per_round = len(batches) // args.passes
    gc.collect()
    gc.freeze()
    timed_samples = 0
    elapsed = 0.0
    for seq, batch in enumerate(batches, 1):
        replay.now = batch.received_at
        delivery = Delivery("METRICS", subject, seq, 1, EVALUATOR.durable)
        started = time.perf_counter()
        await evaluator.handle(batch, delivery)
        await evaluator.fire_absences(batch.received_at)
        if seq > warm * per_round:  # the first rounds learn the series
            elapsed += time.perf_counter() - started
            timed_samples += len(batch.samples)
    changes = replay.changes()
    absent = sum(1 for c in changes if c.reason == "absent")
    rate = timed_samples / elapsed
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"evaluated {timed_samples:,} samples in {elapsed:.2f} s (after {warm} warm-up rounds): "
        f"{rate:,.0f} samples/s, {1e6 / rate:.1f} µs/sample, "
        f"{rate * args.rules_per_metric:,.0f} rule evaluations/s"
    )
    print(
        f"transitions: {len(changes)} ({absent} absence); "
        f"series watched for absence: {len(evaluator.engine.absence)}; max RSS {rss_mb:.0f} MB"
    )
    verdict = "ok" if rate >= FLOOR_SAMPLES_PER_S else "BELOW FLOOR"
    print(f"floor {FLOOR_SAMPLES_PER_S:,} samples/s: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=250, help="sample names")
    parser.add_argument("--series-per-metric", type=int, default=40)
    parser.add_argument("--rules-per-metric", type=int, default=4, choices=range(1, 5))
    parser.add_argument("--passes", type=int, default=20, help="rounds of every series")
    parser.add_argument("--interval", type=float, default=10.0, help="simulated s per round")
    parser.add_argument("--batch", type=int, default=1000, help="samples per batch")
    parser.add_argument("--seed", type=int, default=8)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
