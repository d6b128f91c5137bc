"""``GET /api/monitoring/oncall``: who a schedule pages now or at any instant, and its shifts
over a range, by the same rules the notifier uses when a step fires."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from services.gateway.common.errors import READ_ONE
from services.gateway.common.paths import PREFIX
from services.gateway.common.routes import Viewer
from services.gateway.common.state import EngineDep
from services.gateway.oncall.schemas import OnCallPublic, ShiftPublic
from services.gateway.schedules.queries import get_contact, get_schedule
from shared.errors import InvalidInput, NotFound
from shared.events.base import utcnow
from shared.oncall import on_call, shifts
from shared.pagingconfig import zone

router = APIRouter(prefix=PREFIX, tags=["oncall"])

MAX_RANGE = timedelta(days=366)
TIME = (
    "ISO 8601 date and time; with an offset (2026-01-06T02:00:00Z), or without one in the "
    "schedule's time zone"
)


def _instant(value: str, field: str, time_zone: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field}: {value!r} is not a date and time like 2026-01-06T02:00:00Z", field=field
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone(time_zone))


@router.get("/oncall", responses=READ_ONE)
async def who_is_on_call(
    _: Viewer,
    engine: EngineDep,
    schedule: Annotated[str, Query(min_length=1, max_length=100)],
    at: Annotated[str | None, Query(max_length=64, description=TIME + "; default now")] = None,
    start: Annotated[
        str | None, Query(alias="from", max_length=64, description=TIME + "; with to")
    ] = None,
    end: Annotated[
        str | None, Query(alias="to", max_length=64, description=TIME + "; with from")
    ] = None,
) -> OnCallPublic:
    """Who is on call in ``schedule`` at ``at``; with ``from`` and ``to`` also every shift
    in that range (at most 366 days)."""
    config = await get_schedule(engine, schedule)
    if config is None:
        raise NotFound(f"schedule: no schedule {schedule!r}", field="schedule")
    instant = utcnow() if at is None else _instant(at, "at", config.time_zone)
    found = on_call(config, instant)
    contact = await get_contact(engine, found.user) if found is not None else None
    listed: list[ShiftPublic] | None = None
    if start is not None or end is not None:
        if start is None or end is None:
            missing = "from" if start is None else "to"
            raise InvalidInput(f"{missing}: give both from and to", field=missing)
        begin = _instant(start, "from", config.time_zone)
        until = _instant(end, "to", config.time_zone)
        if until <= begin:
            raise InvalidInput("to: must be after from", field="to")
        if until - begin > MAX_RANGE:
            raise InvalidInput("to: at most 366 days after from", field="to")
        try:
            found_shifts = shifts(config, begin, until)
        except ValueError as exc:
            raise InvalidInput(f"to: {exc}", field="to") from None
        listed = [ShiftPublic.model_validate(shift) for shift in found_shifts]
    return OnCallPublic(
        schedule=config.name,
        at=instant,
        user=found.user if found else None,
        layer=found.layer if found else None,
        override=found.override if found else False,
        shift_start=found.start if found else None,
        shift_end=found.end if found else None,
        contacts=list(contact.methods) if contact is not None else [],
        shifts=listed,
    )
