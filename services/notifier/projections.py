"""The delivery ledger: one row per (event, channel, recipient), so each is delivered once.

A row is ``queued`` while its channel cannot take it yet (grouping, a rate limit, a
receiver being retried; the row then holds the trigger so a restart can send it),
then ``delivered`` or ``failed``.

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

import orjson
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
    delete,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.notifier.domain import LedgerEntry
from shared.db import ProjectionStore, is_sqlite
from shared.events import NotificationDelivered, NotificationFailed, NotificationQueued

SERVICE = "notifier"
LEDGER_PROJECTION = "notifier-ledger"

metadata = MetaData()

deliveries = Table(
    "notifier_ledger",
    metadata,
    Column("delivery_id", String(64), primary_key=True),
    Column("event_id", String(64), nullable=False, index=True),
    Column("event_type", String(64), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("subject_id", String(100), nullable=False, default="", index=True),
    Column("recipient", String(500), nullable=False, default=""),
    Column("user", String(100), nullable=False, default=""),
    Column("group_key", String(200), nullable=False, default=""),
    Column("trigger", LargeBinary, nullable=True),  # queued rows: the event to send
    Column("origin", Text, nullable=False, default=""),  # queued rows: stream/seq/consumer
    Column("thread", String(500), nullable=True),  # delivered rows: what updates refer to
    Column("digest", String(64), nullable=False, default=""),
    Column("status", String(16), nullable=False),  # queued | delivered | failed
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
Recorded = NotificationQueued | NotificationDelivered | NotificationFailed


def _outcome_values(outcome: Recorded) -> dict[str, Any]:
    common: dict[str, Any] = {
        "event_id": outcome.event_id,
        "event_type": outcome.event_type,
        "channel": outcome.channel,
        "subject_id": outcome.subject_id,
        "recipient": outcome.recipient,
        "user": outcome.user,
        "digest": outcome.digest,
        "attempts": outcome.attempts,
        "next_attempt_at": None,
        "updated_at": outcome.time,
    }
    if isinstance(outcome, NotificationQueued):
        return common | {
            "status": "queued",
            "permanent": False,
            "group_key": outcome.group,
            "trigger": outcome.trigger.encode(),
            "origin": orjson.dumps(
                {
                    "stream": outcome.origin_stream,
                    "seq": outcome.origin_seq,
                    "consumer": outcome.origin_consumer,
                    "subject": outcome.origin_subject,
                }
            ).decode(),
            "last_error": outcome.error,
        }
    if isinstance(outcome, NotificationDelivered):
        return common | {
            "status": "delivered",
            "permanent": False,
            "status_code": outcome.status_code,
            "latency_ms": outcome.latency_ms,
            "thread": outcome.thread or None,
            "last_error": "",
            "trigger": None,
        }
    return common | {
        "status": "failed",
        "permanent": outcome.permanent,
        "last_error": outcome.error,
        "trigger": None,
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

    def _upsert(self, values: dict[str, Any]) -> Any:
        """Insert or update one row; a delivered row is never downgraded, and a settled
        one never goes back to the queue."""
        dialect = sqlite if is_sqlite(self.engine) else postgresql
        statement = dialect.insert(deliveries).values(**values)
        kept = ("delivery_id", "created_at")
        changes = {k: statement.excluded[k] for k in values if k not in kept}
        settled = ("delivered", "failed") if values["status"] == "queued" else ("delivered",)
        return statement.on_conflict_do_update(
            index_elements=[deliveries.c.delivery_id],
            set_=changes,
            where=deliveries.c.status.not_in(settled),
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

    async def record_queued(self, queued: NotificationQueued) -> None:
        """Waiting for its channel; the row keeps what a restart needs to send it."""
        values = _outcome_values(queued) | {
            "delivery_id": queued.aggregate_id,
            "created_at": queued.time,
        }
        async with self.engine.begin() as conn:
            await conn.execute(self._upsert(values))

    async def queued(self) -> list[dict[str, Any]]:
        """The rows still waiting, oldest first: what the channels' queues restart with."""
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(deliveries)
                .where(deliveries.c.status == "queued")
                .order_by(deliveries.c.created_at, deliveries.c.delivery_id)
            )
            return [dict(row) for row in result.mappings()]

    async def reopen(self, event_id: str) -> int:
        """Failed deliveries of an event are forgotten so a re-drive tries them again."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(deliveries).where(
                    deliveries.c.event_id == event_id, deliveries.c.status == "failed"
                )
            )
            return int(result.rowcount or 0)

    async def thread(self, channel: str, subject_id: str, recipient: str = "") -> str | None:
        """What the first message about ``subject_id`` to ``channel`` (and ``recipient``)
        returned, if any."""
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(deliveries.c.thread)
                .where(
                    deliveries.c.channel == channel,
                    deliveries.c.subject_id == subject_id,
                    deliveries.c.recipient == recipient,
                    deliveries.c.thread.is_not(None),
                )
                .order_by(deliveries.c.created_at)
                .limit(1)
            )
            return None if value is None else str(value)

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

    async def apply_recorded(self, outcome: Recorded, seq: int) -> bool:
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
