"""An escalation engine on a real nats-server and SQLite file, with a clock the test moves."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier.escalation import EscalationEngine
from shared.bus import EventBus
from shared.db import create_engine
from shared.events import AlertAcknowledged, AlertFired, AlertResolved, Event
from shared.events.paging import EscalationEvent, EscalationStepFired
from shared.pagingconfig import ContactConfig, EscalationPolicyConfig, ScheduleConfig
from shared.streams import PAGING
from tests.waiting import eventually

T0 = datetime(2026, 1, 6, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    at: datetime = T0

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@dataclass
class Directory:
    """The paging configuration as plain dictionaries."""

    policy_map: dict[str, EscalationPolicyConfig] = field(default_factory=dict)
    schedule_map: dict[str, ScheduleConfig] = field(default_factory=dict)
    contact_map: dict[str, ContactConfig] = field(default_factory=dict)

    def policies(self) -> dict[str, EscalationPolicyConfig]:
        return self.policy_map

    def schedules(self) -> dict[str, ScheduleConfig]:
        return self.schedule_map

    def contacts(self) -> dict[str, ContactConfig]:
        return self.contact_map

    def add(self, **raw: Any) -> None:
        for item in raw.get("policies", []):
            policy = EscalationPolicyConfig.model_validate(item)
            self.policy_map[policy.name] = policy
        for item in raw.get("schedules", []):
            schedule = ScheduleConfig.model_validate(item)
            self.schedule_map[schedule.name] = schedule
        for item in raw.get("contacts", []):
            contact = ContactConfig.model_validate(item)
            self.contact_map[contact.name] = contact


ALERT: dict[str, Any] = {
    "rule": "cpu-high",
    "fingerprint": "fp-1",
    "metric": "cpu",
    "labels": {"host": "web-1"},
    "severity": "critical",
}


def fired(alert_id: str = "alert-1", at: datetime = T0) -> AlertFired:
    return AlertFired(
        aggregate_id=alert_id, value=97.0, threshold=90.0, summary="cpu at 97", time=at, **ALERT
    )


def acknowledged(alert_id: str, at: datetime, by: str = "ann") -> AlertAcknowledged:
    return AlertAcknowledged(aggregate_id=alert_id, by=by, time=at, version=2, **ALERT)


def resolved(alert_id: str, at: datetime) -> AlertResolved:
    return AlertResolved(aggregate_id=alert_id, time=at, version=3, **ALERT)


@dataclass
class Rig:
    bus: EventBus
    db: AsyncEngine
    clock: Clock = field(default_factory=Clock)
    directory: Directory = field(default_factory=Directory)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def engine(self, cls: type[EscalationEngine] = EscalationEngine) -> EscalationEngine:
        engine = cls(lambda: self.bus, self.db, self.directory, clock=self.clock.now)
        await engine.start()
        self.tasks.append(asyncio.create_task(engine.run_timers()))
        return engine

    async def halt(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self.tasks.clear()

    async def events(self) -> list[EscalationEvent]:
        found: list[Event] = [r.event async for r in self.bus.replay(PAGING.name)]
        return [e for e in found if isinstance(e, EscalationEvent)]

    async def fired(self) -> list[EscalationStepFired]:
        return [e for e in await self.events() if isinstance(e, EscalationStepFired)]

    async def wait_fired(self, count: int, within_s: float = 1.0) -> list[EscalationStepFired]:
        """``count`` steps fired: the timer loop must get there within a second."""

        async def probe() -> list[EscalationStepFired] | None:
            steps = await self.fired()
            return steps if len(steps) >= count else None

        steps: list[EscalationStepFired] = await eventually(
            probe, within_s=within_s, what=f"{count} steps fired", every_s=0.05
        )
        assert len(steps) == count, [(s.generation, s.round, s.step) for s in steps]
        return steps

    async def wait_for(self, kind: str, count: int = 1) -> list[EscalationEvent]:
        async def probe() -> list[EscalationEvent] | None:
            found = [e for e in await self.events() if e.type == kind]
            return found if len(found) >= count else None

        found: list[EscalationEvent] = await eventually(
            probe, within_s=2.0, what=f"{count} {kind}", every_s=0.05
        )
        return found

    async def quiet(self, expected_fired: int) -> None:
        """Nothing more fires for longer than the timer loop's tick, twice over."""
        await asyncio.sleep(0.6)
        steps = await self.fired()
        assert len(steps) == expected_fired, [(s.generation, s.round, s.step) for s in steps]


def sqlite_engine(path: Path) -> AsyncEngine:
    return create_engine(f"sqlite+aiosqlite:///{path}")
