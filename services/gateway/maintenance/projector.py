"""Applies CONFIG's maintenance window events: the file's set replaced as a whole, the API's
one by one."""

from __future__ import annotations

from services.gateway.common.config_items import config_projection
from services.gateway.maintenance.tables import maintenance
from shared.configbook import MAINTENANCE

PROJECTION_NAME = "gateway-maintenance"
PROJECTIONS = (config_projection(PROJECTION_NAME, MAINTENANCE, maintenance),)
