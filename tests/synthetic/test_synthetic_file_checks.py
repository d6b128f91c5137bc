"""Checks from the configuration file are read-only through the request/reply API, like
rules and channels; checks recorded by an older version as "config" count as the file's."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.synthetic.app import build
from services.synthetic.domain import check_id_for
from shared import subjects
from shared.bus import EventBus
from shared.commands import CONFIGURE_CHECK, REMOVE_CHECK
from shared.config import CheckConfig, VigilConfig
from shared.errors import Conflict
from shared.events import CheckConfigured, Event
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.synthetic.conftest import HttpTarget


async def definition_events(bus: EventBus) -> list[Event]:
    return [r.event async for r in bus.replay("SYNTHETIC", f"{subjects.CHECK_DEFINITIONS}.>")]


async def test_a_file_check_cannot_be_changed_or_removed_through_the_api(
    settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    target: HttpTarget,
    tmp_path: Path,
) -> None:
    path = tmp_path / "vigil.yaml"
    config = VigilConfig(checks=[CheckConfig(name="home", url=target.url, interval=3600)])
    await start_service(build(settings.model_copy(update={"config": path}), config))
    with pytest.raises(Conflict, match=f"check 'home' is managed by the configuration file {path}"):
        await bus.request(CONFIGURE_CHECK, {"name": "home", "url": target.url, "enabled": False})
    with pytest.raises(Conflict, match="managed by the configuration file") as refused:
        await bus.request(REMOVE_CHECK, {"check_id": check_id_for("home")})
    assert refused.value.field == "name"
    made = await bus.request(CONFIGURE_CHECK, {"name": "api", "url": target.url, "enabled": False})
    assert made["version"] == 1  # the API's own checks are the API's to change
    await bus.request(REMOVE_CHECK, {"check_id": made["aggregate_id"]})
    sources = [
        (e.name, e.source) for e in await definition_events(bus) if isinstance(e, CheckConfigured)
    ]
    assert sources == [("home", "file"), ("api", "api")]


async def test_checks_an_older_version_recorded_as_config_are_the_files(
    settings: Settings, bus: EventBus, start_service: RuntimeFactory, target: HttpTarget
) -> None:
    check = CheckConfig(name="home", url=target.url, interval=3600)
    legacy = CheckConfigured(
        aggregate_id=check_id_for("home"),
        name="home",
        url=target.url,
        interval_s=3600.0,
        source="config",
    )
    await bus.publish(subjects.check_definition(legacy.aggregate_id), legacy)
    await start_service(build(settings, VigilConfig(checks=[check])))
    assert len(await definition_events(bus)) == 1  # the same check: nothing appended
    with pytest.raises(Conflict, match="managed by the configuration file"):
        await bus.request(REMOVE_CHECK, {"check_id": check_id_for("home")})
