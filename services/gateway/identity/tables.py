"""The identity read model: users, keys and sessions as the API lists them.

Hashes are kept here so the in-memory cache can be loaded at start without a replay; no
route ever returns them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

from services.gateway.identity.ledger import MAX_KEY_NAME_CHARS

SECTION = "gateway_identity"  # table prefix and checkpoint table of this section
PROJECTION = "gateway-identity"

metadata = MetaData()

users = Table(
    f"{SECTION}_users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
)

api_keys = Table(
    f"{SECTION}_keys",
    metadata,
    Column("key_id", String(20), primary_key=True),
    Column("name", String(MAX_KEY_NAME_CHARS * 4), nullable=False),
    Column("role", String(20), nullable=False),
    Column("prefix", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("revoked_by", String(200), nullable=False, default=""),
    Column("seq", BigInteger, nullable=False),
    Index(f"{SECTION}_keys_seq", "seq"),
)

sessions = Table(
    f"{SECTION}_sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("user", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("client", String(200), nullable=False, default=""),
    Index(f"{SECTION}_sessions_user", "user"),
    Index(f"{SECTION}_sessions_expires", "expires_at"),
)
