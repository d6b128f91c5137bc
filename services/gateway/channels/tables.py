"""The channels read model: one row per current channel. Its secret is kept only in the
encrypted form the events carry; the API shows whether one is set, never the value."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, String, Table, Text

from services.gateway.common.tables import metadata

channels = Table(
    "gateway_channels",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("type", String(20), nullable=False),
    Column("source", String(10), nullable=False),  # file | api
    Column("file", Text, nullable=False, default=""),
    Column("definition", JSON, nullable=False),  # as the YAML file writes it, secret left out
    Column("secret", Text, nullable=False, default=""),  # enc:v1:… or empty
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(100), nullable=False, default=""),
    Column("seq", BigInteger, nullable=False),
    Index("gateway_channels_source", "source", "name"),
)
