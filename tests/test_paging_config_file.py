"""Contacts, schedules and escalation policies in the configuration file: a good file
loads, a bad one names the file, line and field, and a policy's references are checked
against the file's own sections when it has them."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import cli
from shared.config import ConfigError, parse_config

GOOD = """
channels:
  - {name: ops, type: webhook, url: "http://127.0.0.1:9000/hook"}
contacts:
  - name: alice
    methods:
      - {channel: ops}
      - {channel: mail, address: alice@example.com}
  - name: bob.smith
    methods: [{channel: pager, address: R0UT1NGKEY}]
schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - name: weekdays
        users: [alice, bob.smith]
        rotation: weekly
        start: 2026-01-05
        handoff: 10:30
      - name: custom
        users: [bob.smith]
        rotation: custom
        shift: 12h
        start: 2026-01-05
    overrides:
      - {user: alice, start: 2026-12-01T02:00, end: 2026-12-01T06:00}
escalation_policies:
  - name: default
    steps:
      - notify: [{schedule: primary}]
      - delay: 10m
        notify: [{user: alice}, {channel: ops}]
    repeat: 2
    ack_timeout: 1h
"""


def test_documented_paging_example_loads_with_dates_and_times_as_written() -> None:
    config = parse_config(GOOD)
    assert [c.name for c in config.contacts] == ["alice", "bob.smith"]
    weekdays, custom = config.schedules[0].layers
    assert (weekdays.start, weekdays.handoff) == ("2026-01-05", "10:30")
    assert custom.shift == 12 * 3600
    assert config.schedules[0].overrides[0].start == "2026-12-01T02:00"
    policy = config.escalation_policies[0]
    assert (policy.steps[1].delay, policy.repeat, policy.ack_timeout) == (600, 2, 3600)
    assert [t.user for t in policy.steps[1].notify] == ["alice", None]


def test_check_config_accepts_the_example(tmp_path: Path) -> None:
    path = tmp_path / "vigil.yaml"
    path.write_text(GOOD)
    assert cli.main(["check-config", str(path)]) == 0
    path.write_text(GOOD.replace("{user: alice}", "{user: carol}"))
    assert cli.main(["check-config", str(path)]) == 2


def test_references_are_left_to_the_running_system_without_the_section() -> None:
    """API-made schedules and contacts can be named by a file that lists none."""
    text = "escalation_policies:\n  - name: p\n    steps: [{notify: [{user: x}, {schedule: y}]}]\n"
    config = parse_config(text)
    assert config.escalation_policies[0].steps[0].notify[1].schedule == "y"
    # an empty section is a section: then nothing can be named
    with pytest.raises(ConfigError, match=r"notify\[0\]\.user: 'x' is not in contacts"):
        parse_config("contacts: []\n" + text)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("{user: alice}, {channel: ops}", "{user: carol}, {channel: ops}"),
            "vigil.yaml:32: escalation_policies[0].steps[1].notify[0].user: 'carol' is not "
            "in contacts (the file lists alice, bob.smith)",
        ),
        (
            ("{schedule: primary}", "{schedule: secondary}"),
            "vigil.yaml:30: escalation_policies[0].steps[0].notify[0].schedule: 'secondary' "
            "is not in schedules",
        ),
        (
            ("{user: alice}, {channel: ops}", "{user: alice, channel: ops}"),
            "vigil.yaml:32: escalation_policies[0].steps[1].notify[0]: give exactly one of "
            "channel, user or schedule",
        ),
        (("- name: bob.smith", "- name: alice"), "vigil.yaml:9: contacts[1].name: duplicate"),
        (
            (
                "ack_timeout: 1h",
                "ack_timeout: 1h\n  - name: default\n    steps: [{notify: [{channel: ops}]}]",
            ),
            "vigil.yaml:35: escalation_policies[1].name: duplicate name 'default'",
        ),
        (
            ("ack_timeout: 1h", "ack_timeout: 1h\n  - name: empty\n    steps: []"),
            ":36: escalation_policies[1].steps: List should have at least 1 item",
        ),
        (("time_zone: Europe/Berlin", "time_zone: Mars/Olympus"), ":13: schedules[0].time_zone"),
        (("handoff: 10:30", "handoff: 25:00"), ":19: schedules[0].layers[0].handoff"),
        (("rotation: custom", "rotation: hourly"), ":22: schedules[0].layers[1].rotation"),
        (
            ("        shift: 12h\n", ""),
            ":20: schedules[0].layers[1]: shift is required for a custom rotation",
        ),
        (("end: 2026-12-01T06:00", "end: 2026-12-01T01:00"), "overrides[0]: end must be after"),
        (("methods: [{channel: pager", "methods: [{chanel: pager"), ":10: contacts[1].methods"),
        (("delay: 10m", "delay: soon"), ":31: escalation_policies[0].steps[1].delay"),
        (("repeat: 2", "repeat: -1"), ":33: escalation_policies[0].repeat"),
    ],
)
def test_bad_paging_config_names_line_and_field(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError) as error:
        parse_config(GOOD.replace(old, new, 1))
    assert expected in str(error.value)
