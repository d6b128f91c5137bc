"""The contacts read model: one row per current contact, file-managed or made through the API."""

from __future__ import annotations

from services.gateway.common.config_items import config_table

contacts = config_table("gateway_contacts")
