"""The schedules read model: one row per current schedule, file-managed or made through the API."""

from __future__ import annotations

from services.gateway.common.config_items import config_table

schedules = config_table("gateway_schedules")
