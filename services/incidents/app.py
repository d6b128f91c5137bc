"""Wiring for the incidents service. Its state is the INCIDENTS stream itself: no SQL read model."""

from __future__ import annotations

from dataclasses import dataclass

from services.incidents.api import IncidentCommands
from services.incidents.handlers import FROM_ALERTS, AlertIncidents
from services.incidents.store import IncidentStore
from shared.commands import (
    ADD_INCIDENT_NOTE,
    ASSIGN_INCIDENT,
    CHANGE_INCIDENT_SEVERITY,
    CHANGE_INCIDENT_STATUS,
    OPEN_INCIDENT,
)
from shared.config import VigilConfig, load_config
from shared.runtime import ServiceRuntime
from shared.settings import Settings

SERVICE = "incidents"


@dataclass(frozen=True)
class IncidentsService:
    store: IncidentStore
    from_alerts: AlertIncidents
    commands: IncidentCommands


def attach(runtime: ServiceRuntime, config: VigilConfig) -> IncidentsService:
    """Register the alert consumer and the commands on ``runtime``; returns them for direct use."""
    store = IncidentStore(lambda: runtime.bus)
    service = IncidentsService(
        store, AlertIncidents(store, config.incidents), IncidentCommands(store)
    )
    runtime.consume(FROM_ALERTS, service.from_alerts.handle)
    runtime.respond(OPEN_INCIDENT, service.commands.open)
    runtime.respond(CHANGE_INCIDENT_STATUS, service.commands.change_status)
    runtime.respond(ADD_INCIDENT_NOTE, service.commands.add_note)
    runtime.respond(ASSIGN_INCIDENT, service.commands.assign)
    runtime.respond(CHANGE_INCIDENT_SEVERITY, service.commands.change_severity)
    return service


def build(settings: Settings, config: VigilConfig | None = None) -> ServiceRuntime:
    runtime = ServiceRuntime(SERVICE, settings)
    attach(runtime, config if config is not None else load_config(settings.config))
    return runtime
