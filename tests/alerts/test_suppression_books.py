"""The suppressor with the service's own books: a silence made and expired through its
commands, and a recurring maintenance window in Europe/Berlin, on the injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.bus import EventBus
from shared.config import VigilConfig
from shared.events import AlertSuppressionChanged
from shared.settings import Settings
from tests.alerts.suppression_rig import Clock, Rig, kinds
from tests.conftest import RuntimeFactory

RULES = [{"name": "HighCPU", "metric": "cpu", "warning": 70, "critical": 90}]
# Sunday 2026-03-01, 00:55 UTC = 01:55 in Berlin: five minutes before the window
SUNDAY = datetime(2026, 3, 1, 0, 55, tzinfo=UTC)


@pytest.fixture
def rig(bus: EventBus, settings: Settings, start_service: RuntimeFactory) -> Rig:
    return Rig(bus, settings, start_service, Clock(SUNDAY))


async def test_a_silence_made_and_expired_through_its_commands(rig: Rig) -> None:
    service = await rig.start(VigilConfig.model_validate({"rules": RULES}), *())
    made = await service.silences.create(
        {
            "matchers": [{"name": "host", "value": "web-1", "isRegex": False, "isEqual": True}],
            "endsAt": (SUNDAY + timedelta(hours=2)).isoformat(),
            "createdBy": "ann",
            "comment": "deploy",
        }
    )
    silence_id = made["aggregate_id"]
    await rig.samples(95, host="web-1")
    (fired,) = await rig.until(1)
    (ref,) = fired.suppressed_by
    assert (ref.kind, ref.id, ref.detail) == ("silence", silence_id, "deploy (by ann)")
    assert ref.until == SUNDAY + timedelta(hours=2)
    # expired early: it pages now
    await service.silences.expire({"silence_id": silence_id, "by": "ann"})
    events = await rig.until(2)
    assert kinds(events) == [("AlertFired", ["silence"]), ("AlertSuppressionChanged", [])]


async def test_a_recurring_window_in_its_time_zone_begins_and_ends(rig: Rig) -> None:
    config = VigilConfig.model_validate(
        {
            "rules": RULES,
            "maintenance": [
                {
                    "name": "sunday-patching",
                    "matchers": ['host=~"web-.*"'],
                    "cron": "0 2 * * 0",
                    "duration": "2h",
                    "timezone": "Europe/Berlin",
                }
            ],
        }
    )
    service = await rig.start(config, *())
    await rig.samples(95, host="web-1")
    (fired,) = await rig.until(1)
    assert fired.suppressed_by == []  # 01:55 Berlin: not yet
    await rig.move(5 * 60, service)  # 02:00 Berlin
    events = await rig.until(2)
    assert kinds(events[1:]) == [("AlertSuppressionChanged", ["maintenance"])]
    (ref,) = events[1].suppressed_by
    assert (ref.id, ref.until) == ("sunday-patching", SUNDAY + timedelta(minutes=5, hours=2))
    await rig.move(2 * 3600, service)  # 04:00 Berlin: what still fires pages once
    events = await rig.until(3)
    changed = events[2]
    assert isinstance(changed, AlertSuppressionChanged)
    assert (changed.suppressed_by, changed.status) == ([], "firing")
