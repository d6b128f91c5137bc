"""``vigil rules test`` as a user runs it: a subprocess over files, its output and status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

RULES = """\
rules:
  - name: DiskFull
    metric: disk_used_percent
    warning: 80
    critical: 90
    overrides:
      - matchers: ['mount="/var"']
        warning: 60
    annotations:
      summary: "{{ labels.mount }} is {{ value }}% full"
  - name: HostSilent
    metric: disk_used_percent
    absent_for: 2m
    absent_by: [host]
    severity: warning
"""
SAMPLES_YAML = """\
- {name: disk_used_percent, labels: {host: a, mount: /var}, value: 65, at: 0}
- {name: disk_used_percent, labels: {host: a, mount: /}, value: 70, at: 0}
- {name: disk_used_percent, labels: {host: a, mount: /}, value: 95, at: 60}
- {name: disk_used_percent, labels: {host: a, mount: /var}, value: 40, at: 60}
"""
EXPECTED = """\
- {at: 0, rule: DiskFull, transition: fired, labels: {host: a, mount: /var}, severity: warning}
- {at: 60, rule: DiskFull, transition: fired, severity: critical, value: 95}
- {at: 60, rule: DiskFull, transition: resolved, labels: {host: a, mount: /var}}
- {at: 180, rule: HostSilent, transition: fired, labels: {host: a}, value: 120}
"""


def vigil(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "rules", "test", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "rules": tmp_path / "vigil.yaml",
        "samples": tmp_path / "samples.yaml",
        "expected": tmp_path / "expected.yaml",
    }
    paths["rules"].write_text(RULES)
    paths["samples"].write_text(SAMPLES_YAML)
    paths["expected"].write_text(EXPECTED)
    return paths


def test_prints_each_transition_in_time_order(files: dict[str, Path]) -> None:
    run = vigil(files["rules"], "--samples", files["samples"], "--until", "5m")
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines()[1:] if line.strip()]
    assert rows[:4] == [
        ["0s", "DiskFull", '{host="a",', 'mount="/var"}', "fired", "warning", "65"],
        ["1m", "DiskFull", '{host="a",', 'mount="/"}', "fired", "critical", "95"],
        ["1m", "DiskFull", '{host="a",', 'mount="/var"}', "resolved", "warning", "40"],
        ["3m", "HostSilent", '{host="a"}', "fired", "(no", "data)", "warning", "120"],
    ]
    assert run.stdout.splitlines()[-1] == "4 samples, 4 transitions"


def test_json_lines_with_iso_times_in_and_out(tmp_path: Path, files: dict[str, Path]) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        "\n".join(
            orjson.dumps(line).decode()
            for line in [
                {
                    "name": "disk_used_percent",
                    "labels": {"host": "b"},
                    "value": 85,
                    "at": "2024-06-11T10:00:00Z",
                },
                {
                    "name": "disk_used_percent",
                    "labels": {"host": "b"},
                    "value": 50,
                    "at": "2024-06-11T10:00:30Z",
                },
            ]
        )
    )
    run = vigil(files["rules"], "--samples", samples, "--json")
    assert run.returncode == 0, run.stderr
    transitions = [orjson.loads(line) for line in run.stdout.splitlines()]
    assert [(t["at"], t["transition"], t["value"]) for t in transitions] == [
        ("2024-06-11T10:00:00Z", "fired", 85),
        ("2024-06-11T10:00:30Z", "resolved", 50),
    ]
    assert transitions[0]["annotations"] == {"summary": " is 85.0% full"}


def test_expectations_met_and_not_met(files: dict[str, Path]) -> None:
    met = vigil(
        files["rules"],
        "--samples",
        files["samples"],
        "--until",
        "5m",
        "--expect",
        files["expected"],
    )
    assert met.returncode == 0, met.stderr
    assert "every transition as expected" in met.stderr

    # without --until the silence never reaches its deadline: one transition missing
    short = vigil(files["rules"], "--samples", files["samples"], "--expect", files["expected"])
    assert short.returncode == 1
    assert "transition 4: expected fired HostSilent at 3m, got nothing" in short.stderr


@pytest.mark.parametrize(
    ("which", "text", "message"),
    [
        ("samples", "- {name: disk, value: hot, at: 0}\n", "samples.yaml: [0]: value: "),
        ("samples", '{"name": "disk", "value": 1}\n', "samples.yaml:1: at: Field required"),
        (
            "samples",
            "- {name: d, value: 1, at: 0}\n- {name: d, value: 1, at: 2024-06-11T10:00:00Z}\n",
            "[1]: at: use one form of time throughout",
        ),
        (
            "rules",
            "rules:\n  - name: A\n    metric: m\n    warning: 1\n    function: avg\n",
            "vigil.yaml:2: rules[0].window: function avg needs a window",
        ),
        (
            "expected",
            "- {at: 0, rule: X, transition: exploded}\n",
            "expected.yaml: [0]: transition: ",
        ),
    ],
)
def test_a_bad_file_names_the_entry_and_field(
    files: dict[str, Path], which: str, text: str, message: str
) -> None:
    files[which].write_text(text)
    run = vigil(files["rules"], "--samples", files["samples"], "--expect", files["expected"])
    assert run.returncode == 2
    assert message in run.stderr, run.stderr
