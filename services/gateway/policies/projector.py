"""Applies CONFIG's policy events: the file's set replaced as a whole, the API's one by one."""

from __future__ import annotations

from services.gateway.common.config_items import config_projection
from services.gateway.policies.tables import policies
from shared.configbook import POLICIES

PROJECTION_NAME = "gateway-policies"
PROJECTIONS = (config_projection(PROJECTION_NAME, POLICIES, policies),)
