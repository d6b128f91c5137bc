"""Applies NOTIFICATIONS and DEADLETTERS events to the ledgers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway.common.projection import LiveView, Projection
from services.gateway.common.tables import upsert
from services.gateway.common.views import rows_as
from services.gateway.ledgers.queries import dead_letters_by_id
from services.gateway.ledgers.schemas import DeadLetterPublic, NotificationPublic
from services.gateway.ledgers.tables import (
    dead_letter_retries,
    dead_letters,
    notifications,
    subject_deliveries,
)
from shared import subjects
from shared.events import (
    DeadLetterRetried,
    Event,
    MessageDeadLettered,
    NotificationDelivered,
    NotificationFailed,
)
from shared.streams import DEADLETTERS, NOTIFICATIONS


def describe_outcome(event: NotificationDelivered | NotificationFailed) -> str:
    """One line on the timeline of the alert or incident the notification was about."""
    where = event.channel + (f" → {event.recipient}" if event.recipient else "")
    tries = f"{event.attempts} attempt{'s' if event.attempts != 1 else ''}"
    what = event.event_type
    if isinstance(event, NotificationDelivered):
        code = f" ({event.status_code})" if event.status_code is not None else ""
        text = f"{what} delivered to {where}{code} after {tries}"
    else:
        how = "gave up" if event.gave_up else "failed permanently" if event.permanent else "failed"
        text = f"{what} to {where} {how} after {tries}: {event.error}"
    if event.digest:
        text += " (in a digest)"
    return text


async def project_notification(conn: AsyncConnection, event: Event, seq: int) -> None:
    common: dict[str, Any]
    if isinstance(event, NotificationDelivered):
        common = {
            "status": "delivered",
            "status_code": event.status_code,
            "latency_ms": event.latency_ms,
            "error": "",
            "permanent": False,
        }
    elif isinstance(event, NotificationFailed):
        common = {
            "status": "failed",
            "status_code": None,
            "latency_ms": None,
            "error": event.error,
            "permanent": event.permanent,
        }
    else:
        return
    await upsert(
        conn,
        notifications,
        {"id": event.aggregate_id},
        {
            **common,
            "event_id": event.event_id,
            "event_type": event.event_type,
            "channel": event.channel,
            "attempts": event.attempts,
            "time": event.time,
            "seq": seq,
        },
    )
    if event.subject_id:
        await conn.execute(
            insert(subject_deliveries).values(
                seq=seq,
                subject_id=event.subject_id,
                event_id=event.id,
                type=event.type,
                time=event.time,
                by=event.user,
                detail=describe_outcome(event),
                event=event.model_dump(mode="json"),
            )
        )


async def project_dead_letter(conn: AsyncConnection, event: Event, seq: int) -> None:
    if isinstance(event, DeadLetterRetried):
        await upsert(
            conn,
            dead_letter_retries,
            {"dead_letter_id": event.dead_letter_id},
            {
                "retries": event.attempt,
                "retried_at": event.time,
                "retried_by": event.by,
                "outcome": event.outcome,
                "retry_error": event.error,
            },
        )
        return
    if not isinstance(event, MessageDeadLettered):
        return
    await upsert(
        conn,
        dead_letters,
        {"id": event.id},
        {
            "consumer": event.consumer,
            "stream": event.stream,
            "stream_seq": event.stream_seq,
            "subject": event.subject,
            "deliveries": event.deliveries,
            "error": event.error,
            "payload": event.payload,
            "time": event.time,
            "seq": seq,
        },
    )


DEAD_LETTERS_PROJECTION = "gateway-deadletters"


def by_event_id(event: Event) -> str:
    """A dead letter is kept under its own event id; a re-drive changes that row."""
    return event.dead_letter_id if isinstance(event, DeadLetterRetried) else event.id


async def load_dead_letters(conn: AsyncConnection, ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = await dead_letters_by_id(conn, ids)
    return {
        key: DeadLetterPublic.model_validate(row).model_dump(mode="json")
        for key, row in rows.items()
    }


PROJECTIONS = (
    Projection(
        "gateway-notifications",
        NOTIFICATIONS,
        f"{subjects.NOTIFICATION_EVENTS}.>",
        project_notification,
        live=LiveView("notification", rows_as(NotificationPublic, notifications)),
    ),
    Projection(
        DEAD_LETTERS_PROJECTION,
        DEADLETTERS,
        f"{subjects.DEAD_LETTERS}.>",
        project_dead_letter,
        live=LiveView("dead_letter", load_dead_letters, key=by_event_id),
    ),
)
