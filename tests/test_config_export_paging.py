"""``vigil config export`` writes contacts, schedules and escalation policies, the file's
and the API's, as a file ``vigil check-config`` accepts and the notifier starts from."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import cli
from services.config_cli import CliError, export, render
from services.notifier.app import build as build_notifier
from shared import commands
from shared.bus import EventBus
from shared.config import parse_config
from shared.settings import Settings
from tests.conftest import RuntimeFactory

FILE = parse_config(
    """
contacts:
  - name: alice
    methods: [{channel: mail, address: alice@example.com}]
schedules:
  - name: primary
    time_zone: Europe/Berlin
    layers:
      - {name: week, users: [alice], start: 2026-01-05, handoff: 10:30}
escalation_policies:
  - name: default
    steps:
      - notify: [{schedule: primary}]
      - {delay: 10m, notify: [{user: alice}]}
"""
)


async def test_exported_paging_sections_hold_file_and_api_items_and_load_again(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory, tmp_path: Path
) -> None:
    await start_service(build_notifier(settings, FILE))
    bob = {"name": "bob", "methods": [{"channel": "slack", "address": "U0BOB"}]}
    await bus.request(commands.CREATE_CONTACT, {"contact": bob})
    nights = {
        "name": "nights",
        "layers": [{"name": "l", "users": ["bob"], "rotation": "daily", "start": "2026-01-05"}],
        "overrides": [{"user": "alice", "start": "2026-02-01T02:00", "end": "2026-02-01T06:00"}],
    }
    await bus.request(commands.CREATE_SCHEDULE, {"schedule": nights})
    policy = {
        "name": "nights-policy",
        "steps": [{"delay": "90s", "notify": [{"schedule": "nights"}, {"channel": "ops"}]}],
        "ack_timeout": "30m",
    }
    await bus.request(commands.CREATE_POLICY, {"policy": policy})

    text, running = await export(settings, None)
    assert running
    config = parse_config(text, "exported.yaml")
    assert [c.name for c in config.contacts] == ["alice", "bob"]
    assert [s.name for s in config.schedules] == ["primary", "nights"]
    assert [p.name for p in config.escalation_policies] == ["default", "nights-policy"]
    assert config.schedules[0].layers[0].handoff == "10:30"
    assert config.escalation_policies[1].steps[0].delay == 90
    assert "delay: 1m30s" in text or "delay: 90s" in text
    assert config.contacts == [*FILE.contacts, config.contacts[1]]
    written = tmp_path / "exported.yaml"
    written.write_text(text)
    assert cli.main(["check-config", str(written)]) == 0

    # used as the configuration file, every item is the file's now
    await start_service(build_notifier(settings.model_copy(update={"config": written}), config))
    stored = [r.event async for r in bus.replay("CONFIG", "config.provisioned.notifier.>")]
    assert [
        len(getattr(e, "contacts", [])) for e in stored if type(e).__name__ == "ContactsProvisioned"
    ] == [1, 2]


def test_an_export_naming_nobody_is_refused_with_the_reference() -> None:
    """A policy made through the API may name a person nobody set contact methods for."""
    dangling = FILE.model_copy(
        update={
            "escalation_policies": [
                parse_config(
                    "escalation_policies:\n  - {name: p, steps: [{notify: [{user: carol}]}]}\n"
                ).escalation_policies[0]
            ]
        }
    )
    with pytest.raises(CliError, match=r"notify\[0\]\.user: 'carol' is not in contacts"):
        render(dangling, "test")
    # with no contacts at all, the reference is left to the running system
    assert "carol" in render(dangling.model_copy(update={"contacts": []}), "test")
