"""Incident commands over request/reply; each answers a CommandResult on the INCIDENTS stream."""

from __future__ import annotations

from typing import Any

from services.incidents.domain import IncidentCommand, OpenIncidentAs, decide
from services.incidents.store import IncidentStore
from shared import subjects
from shared.commands import (
    AddIncidentNote,
    AssignIncident,
    ChangeIncidentSeverity,
    ChangeIncidentStatus,
    OpenIncident,
    parse_command,
)
from shared.errors import NotFound
from shared.events import new_id


class IncidentCommands:
    def __init__(self, store: IncidentStore):
        self.store = store

    async def open(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(OpenIncident, body)
        opening = OpenIncidentAs(
            incident_id=new_id(),
            title=command.title,
            severity=command.severity,
            by=command.by,
            description=command.description,
            assignee=command.assignee,
        )
        return await self._execute(opening.incident_id, opening)

    async def change_status(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(ChangeIncidentStatus, body)
        return await self._execute(command.incident_id, command)

    async def add_note(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(AddIncidentNote, body)
        return await self._execute(command.incident_id, command)

    async def assign(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(AssignIncident, body)
        return await self._execute(command.incident_id, command)

    async def change_severity(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(ChangeIncidentSeverity, body)
        return await self._execute(command.incident_id, command)

    async def _execute(self, incident_id: str, command: IncidentCommand) -> dict[str, Any]:
        if not incident_id or subjects.token(incident_id) != incident_id:
            raise NotFound(f"no incident {incident_id}")
        result = await self.store.execute(incident_id, lambda incident: decide(incident, command))
        return result.model_dump()
