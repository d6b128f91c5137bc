"""SLOs in the configuration file: what is taken, and each problem named by its field."""

from __future__ import annotations

import pytest

from shared.config import ConfigError, parse_config
from shared.sloconfig import BURN_ALERT_METRIC, events_of

GOOD = """
slos:
  - name: api
    service: api
    objective: 99.9
    sli:
      availability:
        good: 'http_requests_total{code!~"5.."}'
        total: http_requests_total
"""


def problem(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return str(caught.value)


def test_an_slo_adds_the_burn_rules_once() -> None:
    config = parse_config(GOOD)
    burn = [r for r in config.rules if r.metric == BURN_ALERT_METRIC]
    assert [(r.name, r.labels, r.critical, r.warning) for r in burn] == [
        ("SLOBurnRatePage", {"urgency": "page"}, 1.0, None),
        ("SLOBurnRateTicket", {"urgency": "ticket"}, None, 1.0),
    ]
    assert any(r.name == "HighCPU" for r in config.rules)  # the defaults stay
    assert config.slos[0].window == "30d"
    assert not [r for r in parse_config("rules: []").rules if r.metric == BURN_ALERT_METRIC]
    silent = GOOD.replace("objective: 99.9", "objective: 99.9\n    alerts: false")
    assert not [r for r in parse_config(silent).rules if r.metric == BURN_ALERT_METRIC]


def test_every_kind_of_sli_becomes_events() -> None:
    config = parse_config(
        """
slos:
  - name: up
    objective: 99.5
    window: month
    sli: {availability: {check: home}}
  - name: lat
    objective: 99
    window: quarter
    sli: {latency: {histogram: 'rpc_seconds{job="api"}', threshold: 0.25}}
  - name: lat-check
    objective: 95
    window: 7d
    sli: {latency: {check: home, threshold: 800}}
  - name: errors
    objective: 99
    window: 28d
    sli: {availability: {bad: errors_total, total: requests_total}}
"""
    )
    found = {slo.name: events_of(slo) for slo in config.slos}
    assert found["up"].kind == "runs" and found["up"].total == 'synthetic_check_up{check="home"}'
    assert found["lat"].good == 'rpc_seconds_bucket{job="api", le="0.25"}'
    assert found["lat"].total == 'rpc_seconds_count{job="api"}'
    assert found["lat-check"].kind == "samples" and found["lat-check"].threshold == 800
    assert found["errors"].bad_counter is True
    assert config.slos[0].labels() == {"slo": "up", "service": "", "check": "home"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ("objective: 99.9", "slos[0].objective: Input should be less than 100"),
        ("objective: 100", "slos[0].objective: Input should be less than 100"),
        ("window: 2w", "slos[0].window: '2w' is not a window"),
        ("window: 120d", "slos[0].window: '120d' is not a window"),
        ("total: 'rate(x[5m])'", "slos[0].sli.availability.total: 'rate(x[5m])' is not a series"),
        ("total: '{job=\"a\"}'", "slos[0].sli.availability.total:"),
        ("good: 'x{'", "slos[0].sli.availability.good: 'x{' is not a series selector"),
        ("bad: errors_total", "slos[0].sli.availability.good: give exactly one of good and bad"),
        ("check: home", "slos[0].sli.availability.good: give counters or a check, not both"),
        ("colour: red", "slos[0].colour: Extra inputs are not permitted"),
    ],
)
def test_a_bad_slo_names_its_field(change: str, field: str) -> None:
    key = change.split(":")[0]
    lines = GOOD.splitlines()
    if key == "objective":
        lines = ["    " + change if "objective" in line else line for line in lines]
    elif key in ("window", "colour"):
        lines.insert(4, "    " + change)
    elif key in ("total", "good"):
        lines = [("        " + change) if line.strip().startswith(key) else line for line in lines]
    else:
        lines.insert(8, "        " + change)
    text = "\n".join(lines)
    if change == "objective: 99.9":
        text = text.replace("objective: 99.9", "objective: 100.5")
    message = problem(text)
    assert field in message, message
    assert "vigil.yaml:" in message


def test_other_problems_name_their_field() -> None:
    assert "slos[1].name: duplicate name 'api'" in problem(GOOD + GOOD.split("slos:")[1])
    message = problem("slos:\n  - name: x\n    objective: 99\n    sli: {}\n")
    assert "slos[0].sli.availability: give exactly one of availability and latency" in message
    message = problem("slos:\n  - name: x\n    objective: 99\n    sli: {latency: {threshold: 1}}\n")
    assert (
        "slos[0].sli.latency.histogram: give exactly one of histogram, check and samples" in message
    )
    message = problem(
        "slos:\n  - name: x\n    objective: 99\n"
        "    sli: {latency: {check: a, samples: b, threshold: 1}}\n"
    )
    assert "slos[0].sli.latency.samples: give exactly one" in message
    message = problem(
        "slos:\n  - name: x\n    objective: 99\n    sli: {latency: {check: a, threshold: 0}}\n"
    )
    assert "slos[0].sli.latency.threshold: Input should be greater than 0" in message
    message = problem("slos:\n  - name: x\n    objective: 99\n    sli: {availability: {good: a}}\n")
    assert "slos[0].sli.availability.total: give total with good or bad" in message
