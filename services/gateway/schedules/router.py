"""On-call schedules: list and read for viewers; create, change and delete for admins,
through the notifier."""

from __future__ import annotations

from services.gateway.common.config_items import config_router
from services.gateway.schedules.projector import PROJECTION_NAME
from services.gateway.schedules.schemas import SchedulePublic
from services.gateway.schedules.tables import schedules
from shared import commands
from shared.pagingconfig import ScheduleConfig

router = config_router(
    path="schedules",
    noun="schedule",
    model=ScheduleConfig,
    public=SchedulePublic,
    table=schedules,
    projection=PROJECTION_NAME,
    create=(
        commands.CREATE_SCHEDULE,
        lambda item, by: commands.CreateSchedule(schedule=item, by=by),
    ),
    update=(
        commands.UPDATE_SCHEDULE,
        lambda name, item, by: commands.UpdateSchedule(name=name, schedule=item, by=by),
    ),
    remove=(
        commands.DELETE_SCHEDULE,
        lambda name, by: commands.DeleteSchedule(name=name, by=by),
    ),
    said={
        "list": "Every on-call schedule in use, by name: the configuration file's and those "
        "made here.",
        "create": "Who is on call follows it from the next page on; 409 when the name is "
        "taken (by the file or the API).",
        "update": "Replaces the schedule (layers and overrides; its name stays); 409 for a "
        "file-managed schedule.",
        "delete": "Policy steps naming it page nobody from then on; 409 for a file-managed "
        "schedule.",
    },
)
