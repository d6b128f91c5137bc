"""Contacts, schedules and escalation policies owned by the notifier, against a real
nats-server: made, changed and deleted through request/reply, the file's provisioned
read-only, each kind on its own subject, and the API's kept across a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.notifier.app import build
from services.notifier.paging_commands import PagingCommands
from services.notifier.paging_directory import PagingDirectory
from shared import commands
from shared.bus import EventBus
from shared.config import VigilConfig, parse_config
from shared.configbook import CHANNELS, CONTACTS, POLICIES, SCHEDULES
from shared.errors import Conflict, InvalidInput, NotFound
from shared.events import (
    ChannelsProvisioned,
    ContactCreated,
    ContactDeleted,
    ContactsProvisioned,
    ContactUpdated,
    EscalationPoliciesProvisioned,
    EscalationPolicyCreated,
    ScheduleCreated,
    SchedulesProvisioned,
)
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.streams import CONFIG
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
      - {name: week, users: [alice], start: 2026-01-05, handoff: "10:30"}
escalation_policies:
  - name: default
    steps:
      - notify: [{schedule: primary}]
      - {delay: 10m, notify: [{user: alice}, {channel: ops}]}
    repeat: 1
"""
)

BOB = {"name": "bob", "methods": [{"channel": "mail", "address": "bob@example.com"}]}
NIGHTS = {
    "name": "nights",
    "layers": [{"name": "l", "users": ["bob"], "rotation": "daily", "start": "2026-01-05"}],
}
PAGE_BOB = {"name": "page-bob", "steps": [{"notify": [{"user": "bob"}]}]}


async def stored(bus: EventBus) -> list[tuple[str, Any]]:
    return [(r.subject, r.event) async for r in bus.replay(CONFIG.name)]


def paging_runtime(settings: Settings, file: VigilConfig) -> tuple[ServiceRuntime, PagingDirectory]:
    """Only the paging owners, as the notifier wires them, with the directory in reach."""
    runtime = ServiceRuntime("notifier", settings)
    directory = PagingDirectory()
    PagingCommands(
        directory,
        lambda: runtime.bus,
        file.contacts,
        file.schedules,
        file.escalation_policies,
        "vigil.yaml",
    ).register(runtime)
    return runtime, directory


async def test_api_items_are_made_changed_deleted_and_in_the_directory_at_once(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    runtime, directory = paging_runtime(settings, VigilConfig())
    await start_service(runtime)

    created = await bus.request(commands.CREATE_CONTACT, {"contact": BOB, "by": "key:admin"})
    assert (created["stream"], created["version"]) == ("CONFIG", 1)
    assert directory.contacts()["bob"].methods[0].address == "bob@example.com"
    await bus.request(commands.CREATE_SCHEDULE, {"schedule": NIGHTS})
    await bus.request(commands.CREATE_POLICY, {"policy": PAGE_BOB})
    assert set(directory.schedules()) == {"nights"}
    assert directory.policy("page-bob") is not None

    with pytest.raises(Conflict, match="a contact named 'bob' exists already"):
        await bus.request(commands.CREATE_CONTACT, {"contact": BOB})
    with pytest.raises(InvalidInput, match=r"contact\.methods"):
        await bus.request(commands.CREATE_CONTACT, {"contact": {"name": "eve", "methods": []}})
    with pytest.raises(InvalidInput, match=r"policy\.steps\.0\.notify\.0"):
        await bus.request(
            commands.CREATE_POLICY,
            {"policy": {"name": "p", "steps": [{"notify": [{"user": "a", "channel": "c"}]}]}},
        )
    with pytest.raises(InvalidInput, match="name: must be the contact's name"):
        await bus.request(commands.UPDATE_CONTACT, {"name": "bob", "contact": {**BOB, "name": "x"}})

    moved = {"name": "bob", "methods": [{"channel": "slack", "address": "U123"}]}
    updated = await bus.request(commands.UPDATE_CONTACT, {"name": "bob", "contact": moved})
    assert updated["version"] == 2
    assert directory.contact("bob").methods[0].channel == "slack"  # type: ignore[union-attr]

    await bus.request(commands.DELETE_CONTACT, {"name": "bob", "by": "ann"})
    assert "bob" not in directory.contacts()
    with pytest.raises(NotFound, match="no contact 'bob'"):
        await bus.request(commands.DELETE_CONTACT, {"name": "bob"})
    with pytest.raises(NotFound, match="no policy 'nope'"):
        await bus.request(
            commands.UPDATE_POLICY, {"name": "nope", "policy": {**PAGE_BOB, "name": "nope"}}
        )

    events = await stored(bus)
    contact_events = [(s, e) for s, e in events if CONTACTS.makes(e)]
    assert [type(e) for _, e in contact_events] == [
        ContactsProvisioned,
        ContactCreated,
        ContactUpdated,
        ContactDeleted,
    ]
    assert contact_events[0][0] == "config.provisioned.notifier.contacts"
    assert {s for _, e in contact_events[1:] for s in [CONTACTS.subject("bob")]} == {
        contact_events[1][0]
    }
    assert [type(e) for _, e in events if SCHEDULES.makes(e)][1:] == [ScheduleCreated]
    assert [type(e) for _, e in events if POLICIES.makes(e)][1:] == [EscalationPolicyCreated]


async def test_each_kind_provisions_on_its_own_subject_even_when_all_are_empty(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    """Empty provisionings of different kinds look alike: none may be taken for another."""
    await start_service(build(settings, VigilConfig()))
    provisioned = {s: type(e) for s, e in await stored(bus)}
    assert provisioned == {
        "config.provisioned.notifier": ChannelsProvisioned,
        "config.provisioned.notifier.contacts": ContactsProvisioned,
        "config.provisioned.notifier.schedules": SchedulesProvisioned,
        "config.provisioned.notifier.policies": EscalationPoliciesProvisioned,
    }
    assert CHANNELS.provisioned_subject == "config.provisioned.notifier"  # as stored before
    history = await bus.read_subject(CHANNELS.provisioned_subject)
    assert [type(r.event) for r in history] == [ChannelsProvisioned]


async def test_file_items_are_read_only_and_api_items_survive_a_restart(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory, tmp_path: Path
) -> None:
    first, directory = paging_runtime(settings, FILE)
    await start_service(first)
    assert directory.schedule("primary").layers[0].handoff == "10:30"  # type: ignore[union-attr]
    assert [t.channel for t in directory.policies()["default"].steps[1].notify] == [None, "ops"]
    with pytest.raises(Conflict, match="contact 'alice' is managed by the configuration file"):
        await bus.request(commands.DELETE_CONTACT, {"name": "alice"})
    with pytest.raises(Conflict, match="schedule 'primary' is managed by the configuration"):
        await bus.request(commands.CREATE_SCHEDULE, {"schedule": {**NIGHTS, "name": "primary"}})
    with pytest.raises(Conflict, match="policy 'default' is managed by the configuration"):
        await bus.request(
            commands.UPDATE_POLICY, {"name": "default", "policy": {**PAGE_BOB, "name": "default"}}
        )
    await bus.request(commands.CREATE_CONTACT, {"contact": BOB})
    await bus.request(commands.CREATE_POLICY, {"policy": PAGE_BOB})
    before = len(await stored(bus))
    await first.stop()

    second, again = paging_runtime(settings, FILE)
    await start_service(second)
    assert len(await stored(bus)) == before  # the same file: nothing provisioned again
    assert set(again.contacts()) == {"alice", "bob"}
    assert set(again.policies()) == {"default", "page-bob"}
    assert set(again.schedules()) == {"primary"}
    await second.stop()

    # the file now takes the API's name: the API item goes, the file's is in use
    taken = FILE.model_copy(
        update={
            "contacts": [
                *FILE.contacts,
                parse_config("contacts:\n  - {name: bob, methods: [{channel: pager}]}\n").contacts[
                    0
                ],
            ]
        }
    )
    third, latest = paging_runtime(settings, taken)
    await start_service(third)
    assert latest.contact("bob").methods[0].channel == "pager"  # type: ignore[union-attr]
    with pytest.raises(Conflict, match="managed by the configuration file"):
        await bus.request(commands.DELETE_CONTACT, {"name": "bob"})
