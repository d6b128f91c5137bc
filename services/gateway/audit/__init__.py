"""The audit section: a middleware records every write as an event on AUDIT; the gateway
projects them into a read model that administrators page through."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from services.gateway.audit.middleware import AuditMiddleware
from services.gateway.audit.projector import project_audit
from services.gateway.audit.recorder import AuditRecorder
from services.gateway.audit.router import audit_router
from services.gateway.audit.tables import PROJECTION, SECTION, metadata
from services.gateway.common.state import GatewayState
from services.gateway.identity.projection import SectionProjection
from shared.runtime import ServiceRuntime
from shared.streams import AUDIT


@dataclass
class AuditSection:
    recorder: AuditRecorder
    projection: SectionProjection


def install(app: FastAPI, state: GatewayState) -> AuditSection:
    section = AuditSection(
        AuditRecorder(state.bus),
        SectionProjection.of(
            PROJECTION, AUDIT, "audit.>", project_audit, state.store.engine, metadata, SECTION
        ),
    )
    app.state.audit = section
    app.add_middleware(AuditMiddleware, recorder=section.recorder)
    app.include_router(audit_router)
    return section


def attach(runtime: ServiceRuntime, section: AuditSection) -> None:
    """Run the section's consumer and the recorder inside the gateway's runtime."""
    projection = section.projection
    runtime.on_start(projection.prepare)
    runtime.consume_batches(
        projection.consumer_spec(), projection.handler(), projection.checkpoint()
    )
    runtime.background(section.recorder.publish_forever)
