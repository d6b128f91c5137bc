"""The gateway's sections, each one package with its tables, projector, queries, schemas
and router; ``create_app`` includes every router and ``build_gateway`` runs every
projection."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway.alerts.paging import PROJECTIONS as PAGING
from services.gateway.alerts.projector import PROJECTIONS as ALERTS
from services.gateway.alerts.router import router as alerts_router
from services.gateway.channels import PROJECTIONS as CHANNELS
from services.gateway.channels import router as channels_router
from services.gateway.common.projection import Projection
from services.gateway.contacts import PROJECTIONS as CONTACTS
from services.gateway.contacts import router as contacts_router
from services.gateway.explain import router as explain_router
from services.gateway.health.router import router as health_router
from services.gateway.incidents.projector import PROJECTIONS as INCIDENTS
from services.gateway.incidents.router import router as incidents_router
from services.gateway.ledgers.projector import PROJECTIONS as LEDGERS
from services.gateway.ledgers.router import router as ledgers_router
from services.gateway.live.router import router as live_router
from services.gateway.logs.otlp_router import router as otlp_logs_router
from services.gateway.logs.router import router as logs_router
from services.gateway.logs.tail_router import router as log_tail_router
from services.gateway.maintenance import PROJECTIONS as MAINTENANCE
from services.gateway.maintenance import router as maintenance_router
from services.gateway.metrics.otlp_router import router as otlp_router
from services.gateway.metrics.prom_api import router as prom_api_router
from services.gateway.metrics.remote_write_router import router as remote_write_router
from services.gateway.metrics.router import router as metrics_router
from services.gateway.oncall.router import router as oncall_router
from services.gateway.policies import PROJECTIONS as POLICIES
from services.gateway.policies import router as policies_router
from services.gateway.rules import PROJECTIONS as RULES
from services.gateway.rules import router as rules_router
from services.gateway.schedules import PROJECTIONS as SCHEDULES
from services.gateway.schedules import router as schedules_router
from services.gateway.selfmetrics import router as selfmetrics_router
from services.gateway.silences import PROJECTIONS as SILENCES
from services.gateway.silences import alertmanager as alertmanager_router
from services.gateway.silences import router as silences_router
from services.gateway.sla.router import router as sla_router
from services.gateway.synthetic.projector import PROJECTIONS as SYNTHETIC
from services.gateway.synthetic.router import router as synthetic_router

ROUTERS: tuple[APIRouter, ...] = (
    metrics_router,
    remote_write_router,
    otlp_router,
    prom_api_router,
    otlp_logs_router,
    log_tail_router,
    logs_router,
    sla_router,
    rules_router,  # before alerts: /alerts/{alert_id} would take /alerts/rules
    alerts_router,
    silences_router,
    maintenance_router,
    alertmanager_router,
    explain_router,
    channels_router,
    contacts_router,
    schedules_router,
    oncall_router,
    policies_router,
    incidents_router,
    synthetic_router,
    ledgers_router,
    health_router,
    live_router,
    selfmetrics_router,
)

PROJECTIONS: tuple[Projection, ...] = (
    *ALERTS,
    *PAGING,
    *INCIDENTS,
    *SYNTHETIC,
    *LEDGERS,
    *RULES,
    *CHANNELS,
    *CONTACTS,
    *SCHEDULES,
    *POLICIES,
    *SILENCES,
    *MAINTENANCE,
)

PROJECTION_BY_STREAM: dict[str, Projection] = {p.stream.name: p for p in PROJECTIONS}
