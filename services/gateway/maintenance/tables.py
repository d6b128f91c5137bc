"""The maintenance read model: one row per window in use, file-managed or made through the API."""

from __future__ import annotations

from services.gateway.common.config_items import config_table

maintenance = config_table("gateway_maintenance")
