"""The engine's answers checked by Prometheus itself: the same samples go into
``promtool test rules`` as ``input_series`` and the engine's results as ``exp_samples``;
promtool evaluates every expression with Prometheus' own engine and must agree.

promtool compares values exactly, but Prometheus itself is not exact: it loads test
series in Go map order, so a sum or stddev over several series adds them in a different
order from run to run and the last bit varies; and promtool never matches an expected NaN.
Cases promtool reports as different are therefore compared again here: same label sets,
values within 1e-12 (relative), NaN where NaN."""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
from pathlib import Path
from subprocess import PIPE, STDOUT

import pytest
import yaml

from services.metrics.promql import Engine
from tests.metrics.promql.dataset import SERIES, build_source, promtool_values, series_selector

M = 60_000

# (expression, evaluation time in minutes)
EXPRESSIONS: list[tuple[str, int]] = [
    ("http_requests_total", 12),
    ('http_requests_total{job="api",code!="500"}', 12),
    ('http_requests_total{instance=~"a|c"}', 12),
    ('http_requests_total{instance!~"a.*"}', 12),
    ("rate(http_requests_total[5m])", 10),
    ("rate(http_requests_total[5m])", 17),  # across the reset
    ("rate(http_requests_total[7m])", 16),
    ("increase(http_requests_total[10m])", 20),
    ("irate(http_requests_total[5m])", 15),
    ("delta(cpu_usage[5m])", 9),
    ("idelta(cpu_usage[5m])", 9),
    ("resets(http_requests_total[20m])", 25),
    ("changes(cpu_usage[10m])", 20),
    ("rate(http_requests_total[5m] offset 3m)", 20),
    ("http_requests_total offset 10m", 25),
    ("rate(http_requests_total[3m])", 14),  # web/c inside its gap
    ("avg_over_time(cpu_usage[5m])", 12),
    ("min_over_time(cpu_usage[10m])", 12),
    ("max_over_time(cpu_usage[10m])", 12),
    ("sum_over_time(cpu_usage[4m])", 8),
    ("count_over_time(http_requests_total[10m])", 15),
    ("last_over_time(cpu_usage[5m])", 12),
    ("quantile_over_time(0.75, cpu_usage[10m])", 12),
    ("stddev_over_time(temperature[5m])", 8),
    ("stdvar_over_time(temperature[5m])", 8),
    ("present_over_time(temperature[2m])", 5),
    ("absent_over_time(temperature[2m])", 5),
    ('absent_over_time(nothing{job="x"}[5m])', 5),
    ("sum by (job) (rate(http_requests_total[5m]))", 10),
    ("sum without (instance, code) (http_requests_total)", 10),
    ("avg by (host) (cpu_usage)", 7),
    ("min by (mode) (cpu_usage)", 7),
    ("max(cpu_usage)", 7),
    ("count by (job) (http_requests_total)", 12),
    ("stddev(cpu_usage)", 4),
    ("stdvar by (mode) (cpu_usage)", 4),
    ("group by (job) (http_requests_total)", 4),
    ("topk(2, cpu_usage)", 3),
    ("bottomk(1, cpu_usage) by (mode)", 3),
    ("topk(1, rate(http_requests_total[5m])) by (job)", 10),
    ("quantile(0.25, cpu_usage)", 5),
    ('count_values("value", cpu_usage)', 25),
    ("histogram_quantile(0.9, request_seconds_bucket)", 5),
    ("histogram_quantile(0.5, rate(request_seconds_bucket[5m]))", 7),
    ("histogram_quantile(0.99, sum by (le) (request_seconds_bucket))", 4),
    ("histogram_quantile(0.3, request_seconds_bucket)", 3),
    ("cpu_usage * on(host) group_left(dc) host_info", 6),
    ("host_info * on(host) group_right(dc) cpu_usage", 6),
    ('cpu_usage / ignoring(mode) group_left cpu_usage{mode="user"}', 6),
    ('cpu_usage{mode="user"} - on(host) cpu_usage{mode="user"} offset 1m', 6),
    ("cpu_usage > 4", 6),
    ("cpu_usage > bool 4", 6),
    ("4 < cpu_usage", 6),
    ("2 >= bool cpu_usage", 8),
    ('cpu_usage{mode="user"} == on(host) cpu_usage{mode="user"} offset 2m', 15),
    ('cpu_usage{mode="user"} != bool ignoring(mode) cpu_usage{mode="system"}', 2),
    ("cpu_usage % 3 + 2 ^ 2 * -1", 11),
    ("(1 + 2) * 3 - 4 / 8", 0),
    ("2 > bool 1", 0),
    ('http_requests_total and on(instance) http_requests_total{code="500"}', 12),
    ('http_requests_total{job="web"} or http_requests_total{instance="a"}', 12),
    ('http_requests_total unless on(instance) http_requests_total{code="500"}', 12),
    ("-cpu_usage", 3),
    ("abs(temperature)", 5),
    ("ceil(temperature)", 7),
    ("floor(temperature)", 7),
    ("round(temperature)", 7),
    ("round(cpu_usage, 2)", 11),
    ("clamp(temperature, -3, 3)", 5),
    ("clamp_min(temperature, 0)", 6),
    ("clamp_max(temperature, 0)", 6),
    ("sqrt(cpu_usage)", 4),
    ("ln(cpu_usage)", 4),
    ("log2(cpu_usage)", 4),
    ("log10(cpu_usage)", 4),
    ("scalar(sum(host_info))", 4),
    ("scalar(cpu_usage)", 4),
    ("vector(3)", 4),
    ("time()", 4),
    ("timestamp(temperature)", 5),
    ('label_replace(cpu_usage, "h", "n-$1", "host", "h(.*)")', 4),
    ('label_join(host_info, "where", "/", "host", "dc")', 4),
    ("sort_desc(cpu_usage)", 4),
    ("sort(cpu_usage)", 4),
    ('absent(nothing{job="x"})', 4),
    ("absent(cpu_usage)", 4),
    ("temperature", 4),  # stale marker at 3m hides room x
    ("temperature", 2),
    ("sum(rate(http_requests_total[10m] @ 600))", 20),
    ("max_over_time(rate(http_requests_total[5m])[10m:2m])", 20),
    ("cpu_usage / 0", 3),
    ('count_values("v", round(cpu_usage))', 12),
    ('label_replace(rate(http_requests_total[5m]), "svc", "$1-x", "job", "(.*)")', 10),
    ("topk(scalar(count(host_info)), cpu_usage)", 5),
    ("http_requests_total > bool on(instance, job, code) http_requests_total offset 5m", 20),
    ("rate(http_requests_total[5m] @ 600 offset 1m)", 20),
    ("min_over_time(temperature[5m] offset 2m)", 9),
    ("avg(avg_over_time(cpu_usage[5m:30s]))", 12),
    ("quantile(0.5, rate(http_requests_total[5m]))", 10),
    ("stddev by (host) (cpu_usage)", 6),
    ("clamp(cpu_usage, 2, 5) * on(host) group_left(dc) host_info", 6),
    ("vector(1) and on() absent(nothing)", 2),
    ("sgn(temperature)", 4),
    ("changes(temperature[10m])", 15),
    ("idelta(http_requests_total[5m])", 16),
    ("irate(http_requests_total[1m])", 11),
    ("increase(http_requests_total[90s])", 16),
    (
        "sum(http_requests_total) without (instance) / ignoring(code) group_left "
        "sum(http_requests_total) without (instance, code)",
        12,
    ),
    ("count(count_over_time(temperature[1m]))", 4),
    ("deriv(cpu_usage[5m])", 12),
    ("deriv(http_requests_total[10m])", 20),
    ("predict_linear(cpu_usage[5m], 600)", 12),
    ("predict_linear(http_requests_total[10m], 3600)", 20),
    ("minute(timestamp(temperature))", 12),
    ("hour() + day_of_week() + day_of_month() + days_in_month() + month() + year()", 12),
    ("day_of_year(vector(1700000000)) + minute(vector(1700000000))", 1),
]


# Expressions whose sample order or label sets are not comparable step by step.
INSTANT_ONLY: set[str] = set()


def _labels_text(labels: dict[str, str]) -> str:
    return series_selector(labels.get("__name__", ""), labels)


async def _instant_cases(engine: Engine, expr: str, minutes: int) -> list[dict[str, object]]:
    result = (await engine.instant(expr, minutes * M)).to_prometheus()
    if result["resultType"] == "scalar":
        samples = [{"labels": "{}", "value": float(result["result"][1])}]
    else:
        samples = [
            {"labels": _labels_text(item["metric"]), "value": float(item["value"][1])}
            for item in result["result"]
        ]
    return [{"expr": expr, "eval_time": f"{minutes}m", "exp_samples": samples}]


async def _range_cases(engine: Engine, expr: str) -> list[dict[str, object]]:
    """A range query over the whole data set, one promtool case per step: Prometheus
    evaluates each step on its own, the engine all of them at once."""
    result = (await engine.range(expr, 0, RANGE_END_MIN * M, M)).to_prometheus()
    per_step: dict[int, list[dict[str, object]]] = {m: [] for m in range(RANGE_END_MIN + 1)}
    for item in result["result"]:
        for t, v in item["values"]:
            per_step[round(float(t) / 60)].append(
                {"labels": _labels_text(item["metric"]), "value": float(v)}
            )
    return [
        {"expr": expr, "eval_time": f"{minute}m", "exp_samples": samples}
        for minute, samples in per_step.items()
    ]


RANGE_END_MIN = 29


async def _test_file(tmp: Path) -> tuple[Path, int]:
    engine = Engine(build_source())
    cases: list[dict[str, object]] = []
    for expr, minutes in EXPRESSIONS:
        cases += await _instant_cases(engine, expr, minutes)
        if expr not in INSTANT_ONLY:
            cases += await _range_cases(engine, expr)
    tests = cases
    doc = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": series_selector(name, labels), "values": promtool_values(points)}
                    for name, labels, points in SERIES
                ],
                "promql_expr_test": tests,
            }
        ],
    }
    path = tmp / "golden.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path, len(tests)


async def test_engine_agrees_with_prometheus(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("VIGIL_REQUIRE_PEERS") == "1":
            pytest.fail("promtool is required (apt-get install prometheus)")
        pytest.skip("promtool not installed")
    path, count = await _test_file(tmp_path)
    assert count >= 30 * RANGE_END_MIN
    proc = await asyncio.create_subprocess_exec(
        promtool, "test", "rules", str(path), stdout=PIPE, stderr=STDOUT
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    if proc.returncode != 0:
        mismatches = _mismatches(output.decode())
        assert not mismatches, "\n".join(mismatches)


_CASE = re.compile(r"expr: (.*), time: (.*),\n\s+exp: (.*)\n\s+got: (.*)")
_SAMPLE = re.compile(r"(\{[^}]*\}) (\S+?)(?:, |$)")


def _samples(text: str) -> list[tuple[str, float]]:
    if text.strip() == "nil":
        return []
    found = _SAMPLE.findall(text.strip())
    return sorted((labels, float(value)) for labels, value in found)


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300)


def _mismatches(output: str) -> list[str]:
    """promtool's failures that are more than last-bit noise (or not understood)."""
    cases = _CASE.findall(output)
    if not cases or output.count("expr:") != len(cases):
        return [output]
    bad = []
    for expr, time, exp, got in cases:
        want, have = _samples(exp), _samples(got)
        same = [lw for lw, _ in want] == [lh for lh, _ in have] and all(
            _close(vw, vh) for (_, vw), (_, vh) in zip(want, have, strict=True)
        )
        if not same:
            bad.append(f"{expr} at {time}:\n  engine:     {exp}\n  prometheus: {got}")
    return bad
