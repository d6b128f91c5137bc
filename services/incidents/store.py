"""Incidents live on the log only: each on its own subject, changed through the shared
load, decide, append loop (shared.aggregate), so a concurrent change is decided again on
the reloaded incident and neither is lost."""

from __future__ import annotations

from collections.abc import Callable

from services.incidents.domain import Incident, apply
from shared import subjects
from shared.aggregate import ATTEMPTS, AggregateLog
from shared.bus import EventBus
from shared.commands import CommandResult
from shared.events import Event
from shared.streams import INCIDENTS

Decision = Callable[[Incident | None], list[Event]]


class IncidentStore:
    def __init__(self, bus: Callable[[], EventBus], attempts: int = ATTEMPTS):
        self.log: AggregateLog[Incident | None] = AggregateLog(
            bus, subjects.incident, None, apply, noun="incident", attempts=attempts
        )

    @property
    def attempts(self) -> int:
        return self.log.attempts

    async def load(self, incident_id: str) -> tuple[Incident | None, int]:
        """The incident and the subject sequence of its last event (0 when it does not exist)."""
        snapshot = await self.log.load(incident_id)
        return snapshot.state, snapshot.last_seq

    async def execute(self, incident_id: str, decide: Decision) -> CommandResult:
        """Load, decide, append; on Conflict decide again on the reloaded incident."""
        outcome = await self.log.execute(incident_id, decide)
        incident = outcome.state
        return CommandResult(
            aggregate_id=incident_id,
            version=incident.version if incident is not None else 0,
            seq=outcome.last_seq,
            stream=INCIDENTS.name,
        )
