"""The alerts service owns the rules: the file's, provisioned at start, and those made
through the API (``vigil.cmd.rules.*``), applied to the evaluator before a command is
answered, so a rule created now judges the very next sample."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from services.alerts.domain import Alert, event_id_for
from services.alerts.handlers import SampleEvaluator
from services.alerts.writer import AlertWriter
from shared.bus import EventBus
from shared.commands import (
    CREATE_RULE,
    DELETE_RULE,
    UPDATE_RULE,
    CreateRule,
    DeleteRule,
    UpdateRule,
    parse_command,
)
from shared.config import RuleConfig
from shared.configbook import RULES
from shared.configowner import ConfigOwner
from shared.errors import Conflict
from shared.events import AlertEvent, AlertResolved
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)


class RuleCommands:
    def __init__(
        self,
        evaluator: SampleEvaluator,
        bus: Callable[[], EventBus],
        file_rules: list[RuleConfig],
        file_path: str,
    ):
        self.evaluator = evaluator
        self.owner: ConfigOwner[RuleConfig] = ConfigOwner(
            RULES, bus, file_rules, file_path, evaluator.use_rules
        )

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(CreateRule, body)
        return (await self.owner.create(command.rule, command.by)).model_dump()

    async def update(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(UpdateRule, body)
        return (await self.owner.update(command.name, command.rule, command.by)).model_dump()

    async def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Delete the rule; its open alerts are closed, since nothing would resolve them."""
        command = parse_command(DeleteRule, body)
        result = await self.owner.delete(command.name, command.by)
        await close_alerts_of(self.evaluator.writer, command.name, command.by)
        return result.model_dump()

    def register(self, runtime: ServiceRuntime) -> None:
        runtime.on_start(self.owner.start)
        runtime.respond(CREATE_RULE, self.create)
        runtime.respond(UPDATE_RULE, self.update)
        runtime.respond(DELETE_RULE, self.delete)


def _closed(alert: Alert, by: str) -> AlertResolved:
    version = alert.version + 1
    return AlertResolved(
        id=event_id_for(alert.alert_id, version, "rule-deleted"),
        aggregate_id=alert.alert_id,
        version=version,
        rule=alert.rule,
        fingerprint=alert.fingerprint,
        metric=alert.metric,
        labels=dict(alert.labels),
        severity=alert.severity,
        by=by,
        reason="rule_deleted",
    )


def _close(by: str, alert: Alert | None) -> list[AlertEvent]:
    return [_closed(alert, by)] if alert is not None and alert.is_open else []


async def close_alerts_of(writer: AlertWriter, rule: str, by: str) -> int:
    """Resolve every open alert of ``rule`` (reason ``rule_deleted``); returns how many.
    One that keeps changing under other writers is left open (and logged), the rest closed."""
    closed = 0
    async with writer.lock:
        for alert_id in [a.alert_id for a in writer.book.open.values() if a.rule == rule]:
            try:
                outcome = await writer.execute(alert_id, functools.partial(_close, by))
            except Conflict:
                log.warning(
                    "an alert of a deleted rule kept changing; left open",
                    extra={"rule": rule, "alert_id": alert_id},
                )
                continue
            closed += len(outcome.appended)
    if closed:
        log.info("closed the alerts of a deleted rule", extra={"rule": rule, "alerts": closed})
    return closed
