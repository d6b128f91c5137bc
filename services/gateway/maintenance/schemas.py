"""Bodies of the maintenance section: a window is written exactly as in the YAML file's
``maintenance:``; the list adds its occurrences in the range asked."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, create_model

from services.gateway.common.config_items import public_model
from services.gateway.common.schemas import UtcDateTime
from shared.maintenanceconfig import MaintenanceWindowConfig

MaintenanceWindowPublic: type[BaseModel] = public_model(MaintenanceWindowConfig)


class OccurrencePublic(BaseModel):
    """One stretch of time the window is in force: start <= t < end, in UTC."""

    start: UtcDateTime
    end: UtcDateTime


ScheduledWindowPublic: type[BaseModel] = create_model(
    "ScheduledWindowPublic",
    __base__=MaintenanceWindowPublic,
    __doc__="A window, and when it is in force within the range asked",
    occurrences=(
        list[OccurrencePublic],
        Field(description="Those overlapping the range, in order (at most 1000)"),
    ),
    occurrences_truncated=(bool, Field(description="More occurrences fall in the range")),
    in_force=(bool, Field(description="Whether it is in force now")),
)


class MaintenanceCalendarPublic(BaseModel):
    """Every window in use, with its occurrences from ``from`` to ``to``."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_: UtcDateTime = Field(alias="from")
    to: UtcDateTime
    windows: list[ScheduledWindowPublic]  # type: ignore[valid-type]
