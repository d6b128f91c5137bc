"""The incidents read model: one row per incident, its timeline and its notes."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from services.gateway.common.tables import metadata, timeline

incidents = Table(
    "gateway_incidents",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("title", String(300), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("severity", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("assignee", String(100), nullable=False, default=""),
    Column("opened_by", String(100), nullable=False, default=""),
    Column("alert_id", String(200), nullable=False, default=""),
    Column("fingerprint", String(200), nullable=False, default=""),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("gateway_incidents_status_severity", "status", "severity"),
    Index("gateway_incidents_status_opened_at", "status", "opened_at"),
    Index("gateway_incidents_opened_at", "opened_at"),
)


incident_timeline = timeline("incident", "incident_id")

incident_notes = Table(
    "gateway_incident_notes",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("incident_id", String(200), nullable=False),
    Column("text", Text, nullable=False),
    Column("author", String(100), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("gateway_incident_notes_incident", "incident_id", "seq"),
)
