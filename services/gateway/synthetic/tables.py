"""The synthetic read model: each check with its latest run, and recent results."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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

from services.gateway.common.tables import metadata

checks = Table(
    "gateway_checks",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("url", Text, nullable=False),
    Column("method", String(10), nullable=False),
    Column("expected_status", Integer, nullable=False),
    Column("timeout_s", Float, nullable=False),
    Column("interval_s", Float, nullable=False),
    Column("failures_before_alert", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("source", String(20), nullable=False),
    Column("version", Integer, nullable=False),
    Column("configured_at", DateTime(timezone=True), nullable=False),
    # the latest run, kept on the check so the dashboard needs no per-check lookup
    Column("last_ok", Boolean),
    Column("last_status_code", Integer),
    Column("last_latency_ms", Float),
    Column("last_error", Text),
    Column("last_run_at", DateTime(timezone=True)),
    Column("consecutive_failures", Integer, nullable=False, default=0),
)

check_results = Table(
    "gateway_check_results",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("check_id", String(200), nullable=False),
    Column("name", String(100), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("status_code", Integer),
    Column("latency_ms", Float, nullable=False),
    Column("error", Text, nullable=False, default=""),
    Column("consecutive_failures", Integer, nullable=False),
    Column("trigger", String(20), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Index("gateway_check_results_check", "check_id", "seq"),
)
