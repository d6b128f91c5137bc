"""The delivery ledger: one row per (event, channel), so each is delivered once.

The handler writes an outcome here *before* putting its event on the
NOTIFICATIONS stream (the row keeps the encoded event in ``outbox`` until the
publish succeeded). A crash between the two therefore never sends a second
request to the receiver: the redelivered trigger finds the row and only
publishes what is still in the outbox. ``rebuild`` recreates the ledger from the
stream alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.notifier.domain import LedgerEntry
from shared.db import ProjectionStore, is_sqlite
from shared.events import Event, NotificationDelivered, NotificationFailed

SERVICE = "notifier"
LEDGER_PROJECTION = "notifier-ledger"

metadata = MetaData()

deliveries = Table(
    "notifier_deliveries",
    metadata,
    Column("delivery_id", String(64), primary_key=True),
    Column("event_id", String(64), nullable=False, index=True),
    Column("event_type", String(64), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("status", String(16), nullable=False),  # retrying | delivered | failed
    Column("permanent", Boolean, nullable=False, default=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Float, nullable=True),
    Column("last_error", Text, nullable=False, default=""),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("outbox", LargeBinary, nullable=True),
    Column("published_seq", BigInteger, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


Outcome = NotificationDelivered | NotificationFailed


def _outcome_values(outcome: Outcome) -> dict[str, Any]:
    common: dict[str, Any] = {
        "event_id": outcome.event_id,
        "event_type": outcome.event_type,
        "channel": outcome.channel,
        "attempts": outcome.attempts,
        "next_attempt_at": None,
        "updated_at": outcome.time,
    }
    if isinstance(outcome, NotificationDelivered):
        return common | {
            "status": "delivered",
            "permanent": False,
            "status_code": outcome.status_code,
            "latency_ms": outcome.latency_ms,
            "last_error": "",
        }
    return common | {
        "status": "failed",
        "permanent": outcome.permanent,
        "last_error": outcome.error,
    }


MARK_FLUSH_S = 0.05


class DeliveryLedger:
    def __init__(self, engine: AsyncEngine):
        self.store = ProjectionStore(engine, metadata, SERVICE)
        self.engine = engine
        self._marks: dict[str, int] = {}  # published outcomes not yet marked in the ledger

    async def create(self) -> None:
        await self.store.create_all()

    async def dispose(self) -> None:
        await self.store.dispose()

    def _upsert(self, values: dict[str, Any], keep_delivered: bool = True) -> Any:
        """Insert or update one row; a delivered row is never downgraded."""
        dialect = sqlite if is_sqlite(self.engine) else postgresql
        statement = dialect.insert(deliveries).values(**values)
        kept = ("delivery_id", "created_at")
        changes = {k: statement.excluded[k] for k in values if k not in kept}
        return statement.on_conflict_do_update(
            index_elements=[deliveries.c.delivery_id],
            set_=changes,
            where=(deliveries.c.status != "delivered") if keep_delivered else None,
        )

    async def entries(self, delivery_ids: Iterable[str]) -> dict[str, LedgerEntry]:
        ids = list(delivery_ids)
        if not ids:
            return {}
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(select(deliveries).where(deliveries.c.delivery_id.in_(ids)))
            ).mappings()
            return {
                row["delivery_id"]: LedgerEntry(
                    delivery_id=row["delivery_id"],
                    status=row["status"],
                    permanent=bool(row["permanent"]),
                    attempts=int(row["attempts"]),
                    next_attempt_at=_aware(row["next_attempt_at"]),
                    outbox=row["outbox"],
                )
                for row in rows
            }

    async def record_retrying(
        self,
        delivery_id: str,
        trigger: Event,
        channel: str,
        attempts: int,
        error: str,
        next_attempt_at: datetime | None,
        now: datetime,
    ) -> None:
        """A transient failure that will be retried: kept for inspection, not on the stream."""
        values = {
            "delivery_id": delivery_id,
            "event_id": trigger.id,
            "event_type": trigger.type,
            "channel": channel,
            "status": "retrying",
            "permanent": False,
            "attempts": attempts,
            "last_error": error[:2000],
            "next_attempt_at": next_attempt_at,
            "created_at": now,
            "updated_at": now,
        }
        async with self.engine.begin() as conn:
            await conn.execute(self._upsert(values))

    async def record_outcome(self, outcome: Outcome) -> None:
        """The settled outcome, with its event waiting in the outbox."""
        values = _outcome_values(outcome) | {
            "delivery_id": outcome.aggregate_id,
            "outbox": outcome.encode(),
            "published_seq": None,
            "created_at": outcome.time,
        }
        async with self.engine.begin() as conn:
            await conn.execute(self._upsert(values))

    def mark_published_soon(self, delivery_id: str, seq: int) -> None:
        """Mark a published outcome with the next ``flush_marks``.

        One fsync'd commit per delivery is the notifier's ceiling; the marks of many go
        in one. A mark lost in a crash costs nothing: the outcome stays in the outbox,
        and a redelivery publishes it again under the same event id.
        """
        self._marks[delivery_id] = seq

    async def flush_marks(self) -> None:
        if not self._marks:
            return
        marks, self._marks = self._marks, {}
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(deliveries)
                    .where(deliveries.c.delivery_id == bindparam("marked_id"))
                    .values(outbox=None, published_seq=bindparam("marked_seq")),
                    [{"marked_id": k, "marked_seq": v} for k, v in marks.items()],
                )
        except Exception:
            self._marks = marks | self._marks  # tried again with the next flush
            raise

    async def flush_marks_forever(self, every_s: float = MARK_FLUSH_S) -> None:
        while True:
            await asyncio.sleep(every_s)
            await self.flush_marks()

    async def apply_recorded(self, outcome: Outcome, seq: int) -> bool:
        """Project one NOTIFICATIONS event (rebuild); checkpointed, so replays are harmless."""

        async def change(conn: AsyncConnection) -> None:
            values = _outcome_values(outcome) | {
                "delivery_id": outcome.aggregate_id,
                "outbox": None,
                "published_seq": seq,
                "created_at": outcome.time,
            }
            await conn.execute(self._upsert(values))

        return await self.store.apply(LEDGER_PROJECTION, seq, change)

    async def rows(self) -> list[dict[str, Any]]:
        """Every ledger row, oldest first (for inspection and tests)."""
        async with self.engine.connect() as conn:
            result = await conn.execute(select(deliveries).order_by(deliveries.c.created_at))
            return [dict(row) for row in result.mappings()]
