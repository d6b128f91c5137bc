"""The ledgers: notifications by delivery, dead letters by message."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
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

notifications = Table(
    "gateway_notifications",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("event_id", String(100), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("status_code", Integer),
    Column("latency_ms", Float),
    Column("error", Text, nullable=False, default=""),
    Column("permanent", Boolean, nullable=False, default=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("gateway_notifications_seq", "seq"),
)

dead_letters = Table(
    "gateway_dead_letters",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("consumer", String(200), nullable=False),
    Column("stream", String(100), nullable=False),
    Column("stream_seq", BigInteger, nullable=False),
    Column("subject", String(500), nullable=False),
    Column("deliveries", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("gateway_dead_letters_seq", "seq"),
)

# the latest re-drive of each dead letter (a table of its own: the dead letters' rows
# are written once, when the message is given up on)
dead_letter_retries = Table(
    "gateway_dead_letter_retries",
    metadata,
    Column("dead_letter_id", String(100), primary_key=True),
    Column("retries", Integer, nullable=False),
    Column("retried_at", DateTime(timezone=True), nullable=False),
    Column("retried_by", String(100), nullable=False),
    Column("outcome", String(20), nullable=False),  # succeeded | failed
    Column("retry_error", Text, nullable=False, default=""),
)

# delivery outcomes by the alert or incident they were about (their timelines), keyed by
# the NOTIFICATIONS sequence: a retried delivery shows each settled outcome once
subject_deliveries = Table(
    "gateway_subject_deliveries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("subject_id", String(200), nullable=False),
    Column("event_id", String(100), nullable=False),
    Column("type", String(100), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("by", String(100), nullable=False, default=""),
    Column("detail", Text, nullable=False, default=""),
    Column("event", JSON, nullable=False),
    Index("gateway_subject_deliveries_subject", "subject_id", "seq"),
)
