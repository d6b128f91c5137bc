"""The identity section: users, API keys, browser sessions, the authenticator every route's
``require`` asks, per-identity limits, and (through the audit section) the audit log.

Two calls wire it into a gateway:
- ``install(app, state)`` while the app is built: sets ``app.state.authenticator``, adds
  the audit middleware and includes the identity and audit routers;
- ``attach(runtime, app)`` once the runtime exists: at start, the read models, the cache
  and the keys that must exist; then the IDENTITY and AUDIT consumers and the audit
  recorder.
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway import audit
from services.gateway.common.state import GatewayState
from services.gateway.identity.projection import SectionProjection
from services.gateway.identity.router import ROUTERS
from services.gateway.identity.section import IdentitySection
from shared.bus import EventBus
from shared.runtime import ServiceRuntime
from shared.streams import AUDIT, IDENTITY

__all__ = ["IdentitySection", "attach", "install", "projections", "rebuild"]


def install(app: FastAPI, state: GatewayState) -> IdentitySection:
    section = IdentitySection(state)
    app.state.identity = section
    app.state.authenticator = section.authenticator
    audit.install(app, state)
    for router in ROUTERS:
        app.include_router(router)
    return section


def attach(runtime: ServiceRuntime, app: FastAPI) -> None:
    section: IdentitySection = app.state.identity
    projection = section.projection

    async def prepare() -> None:
        await section.prepare(runtime.bus)

    runtime.on_start(prepare)
    runtime.consume_batches(
        projection.consumer_spec(), projection.handler(section.delivered), projection.checkpoint()
    )
    runtime.background(section.catch_up_forever)
    audit.attach(runtime, app.state.audit)


def projections(engine: AsyncEngine) -> tuple[SectionProjection, ...]:
    """This section's read models (identity, audit) on the gateway's database."""
    from services.gateway.audit.projector import project_audit
    from services.gateway.audit.tables import PROJECTION as AUDIT_PROJECTION
    from services.gateway.audit.tables import SECTION as AUDIT_SECTION
    from services.gateway.audit.tables import metadata as audit_metadata
    from services.gateway.identity.projector import project_identity
    from services.gateway.identity.tables import PROJECTION, SECTION, metadata

    return (
        SectionProjection.of(
            PROJECTION, IDENTITY, "identity.>", project_identity, engine, metadata, SECTION
        ),
        SectionProjection.of(
            AUDIT_PROJECTION, AUDIT, "audit.>", project_audit, engine, audit_metadata, AUDIT_SECTION
        ),
    )


async def rebuild(bus: EventBus, engine: AsyncEngine) -> dict[str, int]:
    """Drop and replay the identity and audit read models (``vigil rebuild gateway``)."""
    return {projection.name: await projection.rebuild(bus) for projection in projections(engine)}
