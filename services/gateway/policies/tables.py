"""The escalation policies read model: one row per current policy, file-managed or made
through the API."""

from __future__ import annotations

from services.gateway.common.config_items import config_table

policies = config_table("gateway_escalation_policies")
