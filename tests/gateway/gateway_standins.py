"""Small request/reply responders that answer commands the way the owning services do:
validate, load the aggregate, decide, append with the expected sequence, reply with
the command result. They let the gateway be tested against real NATS on its own."""

from __future__ import annotations

from typing import Any

from nats.aio.subscription import Subscription

from shared import commands, subjects
from shared.bus import EventBus
from shared.commands import CommandResult, parse_command
from shared.errors import InvalidTransition, NotFound
from shared.events import (
    AlertAcknowledged,
    AlertEvent,
    AlertResolved,
    CheckConfigured,
    CheckRemoved,
    CheckRunRecorded,
    Event,
    IncidentAssigned,
    IncidentNoteAdded,
    IncidentOpened,
    IncidentResolved,
    IncidentSeverityChanged,
    IncidentStatusChanged,
    derived_id,
)

Reply = dict[str, Any]


class StandIns:
    def __init__(self, bus: EventBus):
        self.bus = bus
        self.subscriptions: list[Subscription] = []

    async def serve_all(self) -> StandIns:
        handlers = {
            commands.ACKNOWLEDGE_ALERT: self.acknowledge_alert,
            commands.RESOLVE_ALERT: self.resolve_alert,
            commands.OPEN_INCIDENT: self.open_incident,
            commands.CHANGE_INCIDENT_STATUS: self.change_status,
            commands.ADD_INCIDENT_NOTE: self.add_note,
            commands.ASSIGN_INCIDENT: self.assign,
            commands.CHANGE_INCIDENT_SEVERITY: self.change_severity,
            commands.CONFIGURE_CHECK: self.configure_check,
            commands.RUN_CHECK: self.run_check,
            commands.REMOVE_CHECK: self.remove_check,
        }
        for subject, handler in handlers.items():
            self.subscriptions.append(await self.bus.serve(subject, handler))
        return self

    async def append(self, subject: str, stream: str, event: Event, last_seq: int) -> Reply:
        seq = await self.bus.publish(subject, event, expected_last_subject_seq=last_seq)
        return CommandResult(
            aggregate_id=event.aggregate_id, version=event.version, seq=seq, stream=stream
        ).model_dump()

    # --- alerts ----------------------------------------------------------------

    async def _alert(self, alert_id: str) -> tuple[AlertEvent, int, int]:
        history = await self.bus.read_subject(subjects.alert(alert_id))
        if not history:
            raise NotFound(f"alert_id: no alert {alert_id!r}", field="alert_id")
        last = history[-1]
        assert isinstance(last.event, AlertEvent)
        return last.event, last.seq, len(history)

    async def acknowledge_alert(self, body: dict[str, Any]) -> Reply:
        command = parse_command(commands.AcknowledgeAlert, body)
        last, seq, version = await self._alert(command.alert_id)
        if isinstance(last, AlertAcknowledged | AlertResolved):
            raise InvalidTransition(f"alert {command.alert_id} is already {last.type}")
        event = AlertAcknowledged(
            aggregate_id=command.alert_id,
            version=version + 1,
            by=command.by,
            comment=command.comment,
            rule=last.rule,
            fingerprint=last.fingerprint,
            metric=last.metric,
            labels=last.labels,
            severity=last.severity,
        )
        return await self.append(subjects.alert(command.alert_id), "ALERTS", event, seq)

    async def resolve_alert(self, body: dict[str, Any]) -> Reply:
        command = parse_command(commands.ResolveAlert, body)
        last, seq, version = await self._alert(command.alert_id)
        if isinstance(last, AlertResolved):
            raise InvalidTransition(f"alert {command.alert_id} is already resolved")
        event = AlertResolved(
            aggregate_id=command.alert_id,
            version=version + 1,
            by=command.by,
            reason="manual",
            rule=last.rule,
            fingerprint=last.fingerprint,
            metric=last.metric,
            labels=last.labels,
            severity=last.severity,
        )
        return await self.append(subjects.alert(command.alert_id), "ALERTS", event, seq)

    # --- incidents -------------------------------------------------------------

    async def _incident(self, incident_id: str) -> tuple[str, int, int]:
        """The incident's status, last sequence and version."""
        history = await self.bus.read_subject(subjects.incident(incident_id))
        if not history:
            raise NotFound(f"incident_id: no incident {incident_id!r}", field="incident_id")
        status = "investigating"
        for recorded in history:
            if isinstance(recorded.event, IncidentStatusChanged):
                status = recorded.event.status
            elif isinstance(recorded.event, IncidentResolved):
                status = "resolved"
        return status, history[-1].seq, len(history)

    async def open_incident(self, body: dict[str, Any]) -> Reply:
        command = parse_command(commands.OpenIncident, body)
        incident_id = derived_id("incident", command.title)
        event = IncidentOpened(
            aggregate_id=incident_id,
            title=command.title,
            severity=command.severity,
            description=command.description,
            assignee=command.assignee,
            opened_by=command.by,
        )
        return await self.append(subjects.incident(incident_id), "INCIDENTS", event, 0)

    async def change_status(self, body: dict[str, Any]) -> Reply:
        command = parse_command(commands.ChangeIncidentStatus, body)
        status, seq, version = await self._incident(command.incident_id)
        if status == "resolved":
            raise InvalidTransition("status: the incident is resolved", field="status")
        event = IncidentStatusChanged(
            aggregate_id=command.incident_id,
            version=version + 1,
            previous_status=status,  # type: ignore[arg-type]
            status=command.status,
            by=command.by,
            message=command.message,
        )
        return await self.append(subjects.incident(command.incident_id), "INCIDENTS", event, seq)

    async def add_note(self, body: dict[str, Any]) -> Reply:
        command = parse_command(commands.AddIncidentNote, body)
        _, seq, version = await self._incident(command.incident_id)
        event = IncidentNoteAdded(
            aggregate_id=command.incident_id,
            version=version + 1,
            note_id=derived_id(command.incident_id, version + 1),
            text=command.text,
            author=command.author,
        )
        return await self.append(subjects.incident(command.incident_id), "INCIDENTS", event, seq)

    async def assign(self, body: dict[str, Any]) -> Reply:
        command = parse_command(commands.AssignIncident, body)
        _, seq, version = await self._incident(command.incident_id)
        event = IncidentAssigned(
            aggregate_id=command.incident_id,
            version=version + 1,
            assignee=command.assignee,
            by=command.by,
        )
        return await self.append(subjects.incident(command.incident_id), "INCIDENTS", event, seq)

    async def change_severity(self, body: dict[str, Any]) -> Reply:
        command = parse_command(commands.ChangeIncidentSeverity, body)
        _, seq, version = await self._incident(command.incident_id)
        event = IncidentSeverityChanged(
            aggregate_id=command.incident_id,
            version=version + 1,
            previous_severity="warning",
            severity=command.severity,
            by=command.by,
        )
        return await self.append(subjects.incident(command.incident_id), "INCIDENTS", event, seq)

    # --- synthetic -------------------------------------------------------------

    async def configure_check(self, body: dict[str, Any]) -> Reply:
        command = parse_command(commands.ConfigureCheck, body)
        check_id = subjects.token(command.name)
        subject = subjects.check_definition(check_id)
        history = await self.bus.read_subject(subject)
        event = CheckConfigured(
            aggregate_id=check_id,
            version=len(history) + 1,
            **command.model_dump(exclude={"name"}),
            name=command.name,
        )
        last = history[-1].seq if history else 0
        return await self.append(subject, "SYNTHETIC", event, last)

    async def run_check(self, body: dict[str, Any]) -> Reply:
        command = parse_command(commands.RunCheck, body)
        definitions = await self.bus.read_subject(subjects.check_definition(command.check_id))
        if not definitions or isinstance(definitions[-1].event, CheckRemoved):
            raise NotFound(f"check_id: no check {command.check_id!r}", field="check_id")
        assert isinstance(definitions[-1].event, CheckConfigured)
        event = CheckRunRecorded(
            aggregate_id=command.check_id,
            name=definitions[-1].event.name,
            ok=True,
            status_code=200,
            latency_ms=4.2,
            consecutive_failures=0,
            trigger="manual",
        )
        seq = await self.bus.publish(subjects.check_result(command.check_id), event)
        return CommandResult(
            aggregate_id=command.check_id, version=1, seq=seq, stream="SYNTHETIC"
        ).model_dump()

    async def remove_check(self, body: dict[str, Any]) -> Reply:
        command = parse_command(commands.RemoveCheck, body)
        subject = subjects.check_definition(command.check_id)
        history = await self.bus.read_subject(subject)
        if not history or isinstance(history[-1].event, CheckRemoved):
            raise NotFound(f"check_id: no check {command.check_id!r}", field="check_id")
        assert isinstance(history[-1].event, CheckConfigured)
        event = CheckRemoved(
            aggregate_id=command.check_id,
            version=len(history) + 1,
            name=history[-1].event.name,
        )
        return await self.append(subject, "SYNTHETIC", event, history[-1].seq)
