"""Configuration as code: valid files load, bad ones name the file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import DEFAULT_RULES, ConfigError, load_config, parse_config

GOOD = """
rules:
  - name: HighCPU
    metric: system_cpu_percent
    labels: {host: web-1}
    warning: 70
    critical: 90
    for: 2m
channels:
  - name: ops-webhook
    type: webhook
    url: http://127.0.0.1:9000/hook
    secret: change-me
checks:
  - name: homepage
    type: http
    url: http://127.0.0.1:8000/
    interval: 30s
"""


def test_documented_example_loads() -> None:
    config = parse_config(GOOD)
    rule = config.rules[0]
    assert (rule.warning, rule.critical, rule.for_s, rule.labels) == (
        70,
        90,
        120,
        {"host": "web-1"},
    )
    assert config.channels[0].secret == "change-me"
    assert config.checks[0].interval_s == 30


def test_no_file_gives_the_default_rules() -> None:
    config = load_config(None)
    thresholds = {r.metric: (r.warning, r.critical) for r in config.rules}
    assert thresholds["system_cpu_percent"] == (70, 90)
    assert thresholds["system_memory_percent"] == (80, 95)
    assert thresholds["system_disk_percent"] == (80, 90)
    assert thresholds["system_process_count"] == (1000, 2000)
    assert thresholds["system_load1"] == (2.0, 5.0)
    assert thresholds["app_error_rate_percent"] == (5, 10)
    assert thresholds["app_response_time_ms"] == (500, 1000)
    assert config.rules == list(DEFAULT_RULES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - name: A\n    metric: m\n    warning: lots\n",
            "vigil.yaml:4: rules[0].warning",
        ),
        ("rules:\n  - name: A\n    metric: m\n", "vigil.yaml:2: rules[0]: a rule needs a warning"),
        (
            "rules:\n  - name: A\n    metric: m\n    warning: 9\n    critical: 5\n",
            "critical must be at or above warning",
        ),
        ("rules:\n  - name: A\n    metric: m\n    warning: 1\n    for: soon\n", ":5: rules[0].for"),
        ("channels:\n  - name: c\n    type: pager\n    url: http://x\n", ":3: channels[0].type"),
        ("channels:\n  - name: c\n    type: webhook\n    url: ftp://x\n", ":4: channels[0].url"),
        ("checks:\n  - name: c\n    url: http://x\n    interval: 0s\n", ":4: checks[0].interval"),
        ("rules: [\n", "vigil.yaml:2: not valid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
        ("rulez: []\n", "vigil.yaml:1: rulez: Extra inputs are not permitted"),
        (
            "rules:\n  - {name: A, metric: m, warning: 1}\n  - {name: A, metric: n, warning: 1}\n",
            "duplicate name 'A'",
        ),
    ],
)
def test_bad_config_names_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(text)
    assert expected in str(error.value)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


BUILT_IN = [
    "SyntheticCheckDown",
    "VigilDiskLow",
    "VigilConsumerStalled",
    "VigilConsumerBehind",
    "VigilChannelFailing",
    "VigilServiceRestarting",
    "VigilServiceDown",
    "VigilStreamFilling",
]


def test_own_rules_keep_the_built_in_rules_unless_they_watch_their_metrics() -> None:
    own = parse_config("rules:\n  - {name: A, metric: m, warning: 1}\n")
    assert [r.name for r in own.rules] == ["A", *BUILT_IN]
    replaced = parse_config(
        "rules:\n  - {name: CheckDown, metric: synthetic_check_down, critical: 2}\n"
        "  - {name: Disk, metric: vigil_data_dir_free_percent, direction: below, warning: 20}\n"
    )
    names = [r.name for r in replaced.rules]
    assert names[:2] == ["CheckDown", "Disk"]
    assert "SyntheticCheckDown" not in names and "VigilDiskLow" not in names
    assert len(names) == len(BUILT_IN)


def test_defaults_include_the_built_in_rules() -> None:
    assert [r.name for r in parse_config("").rules][-len(BUILT_IN) :] == BUILT_IN


def test_deadman_switch_is_validated() -> None:
    config = parse_config("deadman:\n  url: https://hc-ping.com/abc\n  interval: 2m\n")
    assert config.deadman is not None and config.deadman.interval_s == 120
    with pytest.raises(ConfigError, match=r"vigil.yaml:2: deadman.url"):
        parse_config("deadman:\n  url: ftp://x\n")
