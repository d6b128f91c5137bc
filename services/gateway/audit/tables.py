"""The audit read model: one row per recorded write, by stream sequence."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table

SECTION = "gateway_audit"
PROJECTION = "gateway-audit"

metadata = MetaData()

audit_events = Table(
    f"{SECTION}_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("id", String(100), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("actor", String(300), nullable=False),
    Column("identity_kind", String(20), nullable=False),
    Column("key_id", String(40), nullable=False),
    Column("role", String(20), nullable=False),
    Column("method", String(10), nullable=False),
    Column("route", String(300), nullable=False),
    Column("target", JSON, nullable=False),
    Column("client", String(100), nullable=False),
    Column("status", Integer, nullable=False),
    Column("outcome", String(20), nullable=False),
    Index(f"{SECTION}_events_time", "time"),
    Index(f"{SECTION}_events_actor", "actor", "seq"),
    Index(f"{SECTION}_events_outcome", "outcome", "seq"),
)
