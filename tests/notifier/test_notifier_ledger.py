"""The delivery ledger on both SQL backends: settled rows, outbox, rebuild projection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest

from services.notifier.domain import delivered, failed, notification_for
from services.notifier.projections import DeliveryLedger
from shared.db import create_engine
from shared.events import IncidentOpened, NotificationQueued, decode_event

TRIGGER = IncidentOpened(id="evt-1", aggregate_id="inc-1", title="API down", severity="critical")
NOTE = notification_for(TRIGGER, "ops")
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[DeliveryLedger]:
    store = DeliveryLedger(create_engine(database_url))
    await store.create()
    yield store
    await store.store.drop_all()
    await store.dispose()


def queued(attempts: int, error: str = "") -> NotificationQueued:
    return NotificationQueued(
        id=f"q-{attempts}",
        aggregate_id=NOTE.delivery_id,
        event_id=TRIGGER.id,
        event_type=TRIGGER.type,
        channel="ops",
        attempts=attempts,
        subject_id="inc-1",
        trigger=TRIGGER.encode().decode(),
        origin_stream="INCIDENTS",
        origin_seq=3,
        origin_consumer="notifier-incidents",
        origin_subject="incidents.events.inc-1",
        group="root/inc-1",
        error=error,
        time=NOW,
    )


async def test_queued_then_delivered_then_published(ledger: DeliveryLedger) -> None:
    await ledger.record_queued(queued(1, "HTTP 500"))
    [waiting] = await ledger.queued()
    assert (waiting["status"], waiting["attempts"], waiting["last_error"]) == (
        "queued",
        1,
        "HTTP 500",
    )
    assert decode_event(waiting["trigger"]) == TRIGGER
    assert orjson.loads(waiting["origin"])["seq"] == 3

    outcome = delivered(TRIGGER, NOTE, "ops", 2, 200, 12.5)
    await ledger.record_outcome(outcome)
    entry = (await ledger.entries([NOTE.delivery_id]))[NOTE.delivery_id]
    assert (entry.status, entry.attempts, entry.outbox) == ("delivered", 2, outcome.encode())
    assert await ledger.queued() == []

    ledger.mark_published_soon(NOTE.delivery_id, 7)
    assert (await ledger.rows())[0]["outbox"] == outcome.encode()  # not until the flush
    await ledger.flush_marks()
    [row] = await ledger.rows()
    assert (row["outbox"], row["published_seq"], row["status_code"], row["last_error"]) == (
        None,
        7,
        200,
        "",
    )


async def test_a_settled_row_is_never_downgraded(ledger: DeliveryLedger) -> None:
    await ledger.record_outcome(delivered(TRIGGER, NOTE, "ops", 1, 200, 3.0))
    await ledger.record_outcome(failed(TRIGGER, NOTE, "ops", 2, "HTTP 500", permanent=False))
    await ledger.record_queued(queued(3, "HTTP 500"))
    [row] = await ledger.rows()
    assert (row["status"], row["attempts"]) == ("delivered", 1)


async def test_a_failure_is_not_queued_again_until_a_redrive_reopens_it(
    ledger: DeliveryLedger,
) -> None:
    await ledger.record_outcome(failed(TRIGGER, NOTE, "ops", 9, "HTTP 500", permanent=False))
    await ledger.record_queued(queued(10))
    assert [r["status"] for r in await ledger.rows()] == ["failed"]
    assert await ledger.reopen(TRIGGER.id) == 1
    await ledger.record_queued(queued(1))
    assert [r["status"] for r in await ledger.rows()] == ["queued"]


async def test_replaying_the_stream_is_checkpointed(ledger: DeliveryLedger) -> None:
    fail = failed(TRIGGER, NOTE, "ops", 8, "timed out", permanent=False)
    ok = delivered(TRIGGER, NOTE, "ops", 1, 204, 4.0)
    assert await ledger.apply_recorded(fail, 1) is True
    assert await ledger.apply_recorded(ok, 2) is True
    assert await ledger.apply_recorded(fail, 1) is False
    [row] = await ledger.rows()
    assert (row["status"], row["status_code"], row["published_seq"]) == ("delivered", 204, 2)
    assert await ledger.store.last_seq("notifier-ledger") == 2


async def test_many_marks_go_in_one_flush(ledger: DeliveryLedger) -> None:
    triggers = [
        IncidentOpened(id=f"evt-{i}", aggregate_id=f"inc-{i}", title="t", severity="critical")
        for i in range(50)
    ]
    for seq, trigger in enumerate(triggers, start=1):
        outcome = delivered(trigger, notification_for(trigger, "ops"), "ops", 1, 204, 1.0)
        await ledger.record_outcome(outcome)
        ledger.mark_published_soon(outcome.aggregate_id, seq)
    await ledger.flush_marks()
    await ledger.flush_marks()  # nothing left: a no-op
    rows = await ledger.rows()
    assert sorted(r["published_seq"] for r in rows) == list(range(1, 51))
    assert all(r["outbox"] is None for r in rows)
