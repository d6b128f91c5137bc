"""The alerts read model: one row per alert, and each alert's timeline."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from services.gateway.common.tables import metadata, timeline

alerts = Table(
    "gateway_alerts",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("rule", String(200), nullable=False),
    Column("fingerprint", String(200), nullable=False),
    Column("metric", String(200), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("severity", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("value", Float),
    Column("threshold", Float),
    Column("summary", Text, nullable=False, default=""),
    Column("fired_at", DateTime(timezone=True)),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("acknowledged_by", String(100)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolved_by", String(100)),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("gateway_alerts_status_severity", "status", "severity"),
    Index("gateway_alerts_status_fired_at", "status", "fired_at"),
    Index("gateway_alerts_fired_at", "fired_at"),
)


alert_timeline = timeline("alert", "alert_id")

# why each alert pages nobody, as of its latest event: a table of its own, so a read
# model made before suppression existed gains it without being rebuilt
alert_suppression = Table(
    "gateway_alert_suppression",
    metadata,
    Column("alert_id", String(200), primary_key=True),
    Column("suppressed_by", JSON, nullable=False),
    Column("suppressed", Boolean, nullable=False),
    Column("silenced", Boolean, nullable=False),
    Column("flapping", Boolean, nullable=False),
    Index("gateway_alert_suppression_suppressed", "suppressed"),
    Index("gateway_alert_suppression_silenced", "silenced"),
)
