"""Applies CONFIG's schedule events: the file's set replaced as a whole, the API's one by one."""

from __future__ import annotations

from services.gateway.common.config_items import config_projection
from services.gateway.schedules.tables import schedules
from shared.configbook import SCHEDULES

PROJECTION_NAME = "gateway-schedules"
PROJECTIONS = (config_projection(PROJECTION_NAME, SCHEDULES, schedules),)
