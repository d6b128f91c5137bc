"""The silences read model: one row per silence, as its events left it."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, String, Table, Text

from services.gateway.common.tables import metadata

silences = Table(
    "gateway_silences",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("matchers", JSON, nullable=False),  # Alertmanager's form: name, value, isRegex, ...
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(100), nullable=False, default=""),  # the authenticated identity
    Column("expired_by", String(100), nullable=False, default=""),
    Column("version", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("gateway_silences_ends_at", "ends_at"),
)
