"""Alert commands over request/reply: acknowledge and manual resolve."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.alerts import domain
from services.alerts.domain import Alert
from services.alerts.writer import AlertWriter
from shared import subjects
from shared.commands import AcknowledgeAlert, CommandResult, ResolveAlert, parse_command
from shared.errors import NotFound
from shared.events import AlertEvent
from shared.streams import ALERTS


class AlertCommands:
    def __init__(self, writer: AlertWriter):
        self.writer = writer

    async def acknowledge(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(AcknowledgeAlert, body)
        result = await self._execute(command.alert_id, lambda a: domain.acknowledge(a, command))
        return result.model_dump()

    async def resolve(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(ResolveAlert, body)
        result = await self._execute(command.alert_id, lambda a: domain.resolve(a, command))
        return result.model_dump()

    async def _execute(
        self, alert_id: str, decide: Callable[[Alert | None], list[AlertEvent]]
    ) -> CommandResult:
        """Decide on the alert and append through the alert log, which decides again on
        a Conflict; a decision that raises (no such alert, resolved) appends nothing."""
        if not alert_id or subjects.token(alert_id) != alert_id:
            raise NotFound(f"no alert {alert_id}")
        async with self.writer.lock:
            outcome = await self.writer.execute(alert_id, decide)
        alert = outcome.state
        return CommandResult(
            aggregate_id=alert_id,
            version=alert.version if alert is not None else 0,
            seq=outcome.last_seq,
            stream=ALERTS.name,
        )
