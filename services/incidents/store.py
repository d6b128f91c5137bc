"""Incidents live on the log only: load, decide, append with the sequence the incident was read at.

A Conflict means another writer appended in between; the command is decided again
on the reloaded incident, so neither change is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from services.incidents.domain import Incident, fold
from shared import subjects
from shared.bus import EventBus
from shared.commands import CommandResult
from shared.errors import Conflict
from shared.events import Event
from shared.streams import INCIDENTS

log = logging.getLogger(__name__)

Decision = Callable[[Incident | None], list[Event]]


class IncidentStore:
    def __init__(self, bus: Callable[[], EventBus], attempts: int = 5):
        self._bus = bus
        self.attempts = attempts

    async def load(self, incident_id: str) -> tuple[Incident | None, int]:
        """The incident and the subject sequence of its last event (0 when it does not exist)."""
        history = await self._bus().read_subject(subjects.incident(incident_id))
        if not history:
            return None, 0
        return fold([r.event for r in history]), history[-1].seq

    async def append(self, event: Event, expected_last_subject_seq: int) -> int:
        """Append one event; Conflict when the incident is not at ``expected_last_subject_seq``."""
        seq = await self._bus().publish(
            subjects.incident(event.aggregate_id), event, expected_last_subject_seq
        )
        log.info(
            "incident event recorded",
            extra={
                "event_id": event.id,
                "event_type": event.type,
                "incident_id": event.aggregate_id,
                "version": event.version,
                "stream_seq": seq,
                "correlation_id": event.correlation_id,
            },
        )
        return seq

    async def execute(self, incident_id: str, decide: Decision) -> CommandResult:
        """Load, decide, append; on Conflict decide again on the reloaded incident."""
        for attempt in range(1, self.attempts + 1):
            incident, seq = await self.load(incident_id)
            events = decide(incident)
            version = incident.version if incident is not None else 0
            try:
                for event in events:
                    seq = await self.append(event, seq)
                    version = event.version
            except Conflict:
                log.info(
                    "incident changed concurrently; reloading",
                    extra={"incident_id": incident_id, "attempt": attempt},
                )
                continue
            return CommandResult(
                aggregate_id=incident_id, version=version, seq=seq, stream=INCIDENTS.name
            )
        raise Conflict(f"incident {incident_id} kept changing; try again")
