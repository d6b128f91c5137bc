"""Maintenance windows: list (with occurrences) and read for viewers; create, change and
delete for admins, through the alerts service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Query
from sqlalchemy import select

from services.gateway.common.config_items import config_router, public_item
from services.gateway.common.errors import READ
from services.gateway.common.routes import Viewer
from services.gateway.common.schemas import DateTimeIn
from services.gateway.common.state import EngineDep
from services.gateway.maintenance.projector import PROJECTION_NAME
from services.gateway.maintenance.schemas import (
    MaintenanceCalendarPublic,
    MaintenanceWindowPublic,
    ScheduledWindowPublic,
)
from services.gateway.maintenance.tables import maintenance
from shared import commands
from shared.errors import InvalidInput
from shared.events import utcnow
from shared.maintenanceconfig import MaintenanceWindowConfig, WindowSchedule

DEFAULT_RANGE = timedelta(days=7)
MAX_RANGE = timedelta(days=366)
MAX_WINDOWS = 1000

router = config_router(
    path="maintenance",
    noun="maintenance window",
    model=MaintenanceWindowConfig,
    public=MaintenanceWindowPublic,
    table=maintenance,
    projection=PROJECTION_NAME,
    create=(
        commands.CREATE_MAINTENANCE,
        lambda item, by: commands.CreateMaintenanceWindow(window=item, by=by),
    ),
    update=(
        commands.UPDATE_MAINTENANCE,
        lambda name, item, by: commands.UpdateMaintenanceWindow(name=name, window=item, by=by),
    ),
    remove=(
        commands.DELETE_MAINTENANCE,
        lambda name, by: commands.DeleteMaintenanceWindow(name=name, by=by),
    ),
    said={
        "create": "Matching alerts page nobody while it is in force, from now on; 409 when "
        "the name is taken (by the file or the API).",
        "update": "Replaces the window (its name stays); 409 for a file-managed window.",
        "delete": "Alerts it held back and that still fire page now; 409 for a file-managed "
        "window.",
    },
    listing=False,
)


def time_range(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """[from, to): by default the next 7 days; both need an offset, and at most a year apart."""
    for field, value in (("from", start), ("to", end)):
        if value is not None and value.utcoffset() is None:
            raise InvalidInput(
                f"{field}: needs a UTC offset, like 2026-05-01T00:00:00Z", field=field
            )
    begin = (start or now).astimezone(UTC)
    finish = (end or begin + DEFAULT_RANGE).astimezone(UTC)
    if finish <= begin:
        raise InvalidInput("to: must be after from", field="to")
    if finish - begin > MAX_RANGE:
        raise InvalidInput(f"to: at most {MAX_RANGE.days} days after from", field="to")
    return begin, finish


async def list_windows(
    _: Viewer,
    engine: EngineDep,
    start: Annotated[
        DateTimeIn | None,
        Query(alias="from", description="Start of the range (RFC 3339); default now"),
    ] = None,
    end: Annotated[
        DateTimeIn | None,
        Query(alias="to", description="End of the range (RFC 3339); default 7 days after from"),
    ] = None,
) -> Any:
    """Every maintenance window in use, by name (the file's and those made here), with its
    occurrences between ``from`` and ``to``."""
    now = utcnow()
    begin, finish = time_range(start, end, now)
    async with engine.connect() as conn:
        query = select(maintenance).order_by(maintenance.c.name).limit(MAX_WINDOWS)
        rows = (await conn.execute(query)).mappings().all()
    windows = []
    for row in rows:
        window = MaintenanceWindowConfig.model_validate(row["definition"])
        schedule = WindowSchedule(window)
        found, truncated = schedule.occurrences(begin, finish)
        public = public_item(MaintenanceWindowPublic, row).model_dump(by_alias=True)
        windows.append(
            ScheduledWindowPublic.model_validate(
                {
                    **public,
                    "occurrences": [{"start": o.start, "end": o.end} for o in found],
                    "occurrences_truncated": truncated,
                    "in_force": schedule.covering(now) is not None,
                }
            )
        )
    calendar = {"from": begin, "to": finish, "windows": windows}
    return MaintenanceCalendarPublic.model_validate(calendar)


router.add_api_route(
    "",
    list_windows,
    methods=["GET"],
    name="list_maintenance_windows",
    response_model=MaintenanceCalendarPublic,
    responses=READ,
)
