"""Maintenance windows in force: the file's (``maintenance:``) and the API's
(``vigil.cmd.maintenance.*``), kept on CONFIG like rules are, and asked the same questions
as the silences: which windows cover an alert now, and when that next changes.

What a window covers is worked out once per stretch and kept until the stretch ends (or
the next one begins), so asking for every alert event costs a dictionary lookup and the
matchers, not a walk through the cron expression.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.bus import EventBus
from shared.commands import (
    CREATE_MAINTENANCE,
    DELETE_MAINTENANCE,
    UPDATE_MAINTENANCE,
    CreateMaintenanceWindow,
    DeleteMaintenanceWindow,
    UpdateMaintenanceWindow,
    parse_command,
)
from shared.configbook import MAINTENANCE
from shared.configowner import ConfigOwner
from shared.events import SuppressionRef
from shared.maintenanceconfig import MaintenanceWindowConfig, Occurrence, WindowSchedule
from shared.matchers import Matcher, matches_all
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

ChangeHook = Callable[[], Awaitable[None]]
NEVER = datetime.max.replace(tzinfo=UTC)


async def _unchanged() -> None:
    return None


@dataclass
class CalendarEntry:
    """One window, and the stretch worked out last: valid for times in [valid_from, valid_to)."""

    window: MaintenanceWindowConfig
    schedule: WindowSchedule
    matchers: tuple[Matcher, ...]
    valid_from: datetime = NEVER
    valid_to: datetime = NEVER
    current: Occurrence | None = field(default=None)

    @classmethod
    def of(cls, window: MaintenanceWindowConfig) -> CalendarEntry:
        return cls(window, WindowSchedule(window), window.compiled_matchers())

    def covering(self, now: datetime) -> Occurrence | None:
        if not self.valid_from <= now < self.valid_to:
            current = self.schedule.covering(now)
            following = current.end if current is not None else self.schedule.next_start(now)
            self.valid_from, self.valid_to = now, following or NEVER
            self.current = current
        return self.current

    def next_change(self, now: datetime) -> datetime | None:
        self.covering(now)
        return None if self.valid_to == NEVER else self.valid_to

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.matchers, labels)

    def ref(self, occurrence: Occurrence) -> SuppressionRef:
        return SuppressionRef(
            kind="maintenance",
            id=self.window.name,
            detail=self.window.comment or f"maintenance window {self.window.name}",
            until=occurrence.end,
        )


class MaintenanceCalendar:
    """The windows in use, by name; the owner of the MAINTENANCE configuration kind."""

    def __init__(
        self,
        bus: Callable[[], EventBus],
        file_windows: list[MaintenanceWindowConfig],
        file_path: str,
    ):
        self.entries: dict[str, CalendarEntry] = {}
        self.on_change: ChangeHook = _unchanged
        self.owner: ConfigOwner[MaintenanceWindowConfig] = ConfigOwner(
            MAINTENANCE, bus, file_windows, file_path, self.use
        )

    async def use(self, windows: list[MaintenanceWindowConfig]) -> None:
        """Take the current set (the owner calls this after every change)."""
        self.entries = {w.name: CalendarEntry.of(w) for w in windows}

    @property
    def windows(self) -> list[MaintenanceWindowConfig]:
        return [entry.window for entry in self.entries.values()]

    # --- what the suppression engine asks --------------------------------------

    def active(self, labels: Mapping[str, str], now: datetime) -> list[SuppressionRef]:
        """The windows in force at ``now`` whose matchers all match ``labels``, by name."""
        found = []
        for name in sorted(self.entries):
            entry = self.entries[name]
            current = entry.covering(now)
            if current is not None and entry.matches(labels):
                found.append(entry.ref(current))
        return found

    def next_change(self, now: datetime) -> datetime | None:
        """The next time any window begins or ends, after ``now``."""
        changes = [entry.next_change(now) for entry in self.entries.values()]
        return min((c for c in changes if c is not None), default=None)

    def occurrences(self, start: datetime, end: datetime) -> dict[str, list[Occurrence]]:
        """Each window's occurrences overlapping [start, end)."""
        return {
            name: entry.schedule.occurrences(start, end)[0]
            for name, entry in sorted(self.entries.items())
        }

    # --- commands ---------------------------------------------------------------

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(CreateMaintenanceWindow, body)
        result = await self.owner.create(command.window, command.by)
        await self._changed()
        return result.model_dump()

    async def update(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(UpdateMaintenanceWindow, body)
        result = await self.owner.update(command.name, command.window, command.by)
        await self._changed()
        return result.model_dump()

    async def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(DeleteMaintenanceWindow, body)
        result = await self.owner.delete(command.name, command.by)
        await self._changed()
        return result.model_dump()

    def register(self, runtime: ServiceRuntime) -> None:
        runtime.on_start(self.owner.start)
        runtime.respond(CREATE_MAINTENANCE, self.create)
        runtime.respond(UPDATE_MAINTENANCE, self.update)
        runtime.respond(DELETE_MAINTENANCE, self.delete)

    async def _changed(self) -> None:
        try:
            await self.on_change()
        except Exception:
            log.exception("reacting to a maintenance window change failed")
