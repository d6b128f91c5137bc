"""``GET /api/monitoring/explain?rule=…&labels=k=v,k2=v2``: the alerts service says whether
the rule watches that series and what would keep its alert quiet now; the read model
adds the series' latest alert, explained from its events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from services.gateway.alerts.explain import describe_refs
from services.gateway.alerts.router import explanation
from services.gateway.alerts.schemas import LabelsExplanationPublic
from services.gateway.alerts.tables import alerts
from services.gateway.common.errors import AUTHENTICATED, problems
from services.gateway.common.owners import request_owner
from services.gateway.common.paths import PREFIX
from services.gateway.common.routes import Viewer
from services.gateway.common.state import EngineDep, StateDep
from services.gateway.metrics.batch import parse_label_filter
from shared import commands
from shared.commands import parse_command

router = APIRouter(prefix=PREFIX, tags=["alerts"])


@router.get("/explain", responses=problems(*AUTHENTICATED, 404, 422, 502, 503))
async def explain_labels(
    _: Viewer,
    state: StateDep,
    engine: EngineDep,
    rule: Annotated[str, Query(min_length=1, max_length=200, description="The rule's name")],
    labels: Annotated[
        str | None,
        Query(description='The series\' labels: "k=v,k2=v2" or a JSON object {"k": "v"}'),
    ] = None,
) -> LabelsExplanationPublic:
    """Would ``rule`` page for a series with these labels now, and if not, why not; with
    the series' latest alert explained from its events."""
    query = parse_command(
        commands.ExplainLabels, {"rule": rule, "labels": parse_label_filter(labels)}
    )
    answer: dict[str, Any] = await request_owner(state, commands.EXPLAIN_LABELS, query)
    latest = None
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(alerts.c.id)
            .where(alerts.c.fingerprint == answer["fingerprint"])
            .order_by(alerts.c.fired_at.desc(), alerts.c.id)
            .limit(1)
        )
    if found is not None:
        latest = await explanation(engine, str(found))
    refs = answer["suppressed_by"]
    if not answer["rule"]["matches"]:
        verdict = f"would not fire: {answer['rule']['why']}"
    elif refs:
        verdict = f"would not page now: {describe_refs(refs)}"
    else:
        verdict = "would page now as routed"
    return LabelsExplanationPublic.model_validate({**answer, "verdict": verdict, "alert": latest})
