"""The rules read model: one row per current rule, file-managed or made through the API."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, String, Table, Text

from services.gateway.common.tables import metadata

rules = Table(
    "gateway_rules",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("metric", String(200), nullable=False),
    Column("source", String(10), nullable=False),  # file | api
    Column("file", Text, nullable=False, default=""),
    Column("definition", JSON, nullable=False),  # the rule as the YAML file writes it
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(100), nullable=False, default=""),
    Column("seq", BigInteger, nullable=False),
    Index("gateway_rules_metric", "metric", "name"),
    Index("gateway_rules_source", "source", "name"),
)
