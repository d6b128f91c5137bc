"""Alert commands over request/reply: acknowledge and manual resolve."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from services.alerts import domain
from services.alerts.domain import Alert
from services.alerts.writer import AlertWriter
from shared import subjects
from shared.commands import AcknowledgeAlert, CommandResult, ResolveAlert, parse_command
from shared.errors import Conflict, NotFound
from shared.events import AlertEvent
from shared.streams import ALERTS

log = logging.getLogger(__name__)

CONFLICT_ATTEMPTS = 5


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
        if not alert_id or subjects.token(alert_id) != alert_id:
            raise NotFound(f"no alert {alert_id}")
        async with self.writer.lock:
            for _ in range(CONFLICT_ATTEMPTS):
                alert, seq = await self.writer.current(alert_id)
                events = decide(alert)
                version = alert.version if alert is not None else 0
                try:
                    for event in events:
                        seq = await self.writer.append(event, seq)
                        version = event.version
                except Conflict:
                    log.info("alert changed concurrently; retrying", extra={"alert_id": alert_id})
                    await self.writer.reload(alert_id)
                    continue
                return CommandResult(
                    aggregate_id=alert_id, version=version, seq=seq, stream=ALERTS.name
                )
        raise Conflict(f"alert {alert_id} kept changing; try again")
