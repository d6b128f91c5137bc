"""Applies CONFIG's rule events: the file's set replaced as a whole, the API's one by one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.common.projection import Projection
from services.gateway.common.tables import upsert
from services.gateway.rules.tables import rules
from shared import subjects
from shared.config import RuleConfig
from shared.events import Event, RuleCreated, RuleDeleted, RulesProvisioned, RuleUpdated
from shared.streams import CONFIG


def _row(rule: RuleConfig, event: Event, seq: int, **meta: Any) -> dict[str, Any]:
    return {
        "metric": rule.metric,
        "definition": rule.model_dump(mode="json", by_alias=True),
        "version": event.version,
        "updated_at": event.time,
        "seq": seq,
        **meta,
    }


async def project_rules(conn: AsyncConnection, event: Event, seq: int) -> None:
    if isinstance(event, RulesProvisioned):
        await conn.execute(delete(rules).where(rules.c.source == "file"))
        for rule in event.rules:
            row = _row(rule, event, seq, source="file", file=event.file, updated_by="")
            await upsert(conn, rules, {"name": rule.name}, row)
    elif isinstance(event, RuleCreated | RuleUpdated):
        row = _row(event.rule, event, seq, source="api", file="", updated_by=event.by)
        await upsert(conn, rules, {"name": event.rule.name}, row)
    elif isinstance(event, RuleDeleted):
        await conn.execute(delete(rules).where(rules.c.name == event.name, rules.c.source == "api"))


PROJECTION_NAME = "gateway-rules"
PROJECTIONS = (Projection(PROJECTION_NAME, CONFIG, f"{subjects.CONFIG}.>", project_rules),)
