"""Bodies of the schedules section: a schedule is written exactly as in the YAML file."""

from __future__ import annotations

from pydantic import BaseModel

from services.gateway.common.config_items import public_model
from shared.pagingconfig import ScheduleConfig

SchedulePublic: type[BaseModel] = public_model(ScheduleConfig)
