"""The notification and dead-letter ledgers; dead letters can be re-driven by responders."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from services.gateway.common.errors import COMMAND, READ, READ_ONE
from services.gateway.common.owners import ACCEPTED, accepted, request_owner
from services.gateway.common.pagination import Page, PageParams
from services.gateway.common.paths import PREFIX, resource_path
from services.gateway.common.routes import Responder, Viewer
from services.gateway.common.state import EngineDep, StateDep
from services.gateway.ledgers import queries
from services.gateway.ledgers.projector import DEAD_LETTERS_PROJECTION
from services.gateway.ledgers.schemas import DeadLetterPublic, NotificationPublic
from shared import subjects
from shared.commands import CommandResult, DeadLetterRetryResult, RetryDeadLetter
from shared.durables import owner_of
from shared.errors import Conflict, NotFound

router = APIRouter(prefix=PREFIX, tags=["ledgers"])

# a re-drive runs the consumer's handler: a notification waits for its channel's answer
REDRIVE_TIMEOUT_S = 90.0

DeadLetterId = Annotated[str, Path(min_length=1, max_length=100, description="The dead letter")]


@router.get("/notifications", responses=READ)
async def list_notifications(
    _: Viewer,
    engine: EngineDep,
    page: PageParams,
    channel: Annotated[str | None, Query(max_length=100)] = None,
    status: Literal["delivered", "failed"] | None = None,
) -> Page[NotificationPublic]:
    """Newest first."""
    rows, next_cursor = await queries.list_notifications(engine, channel, status, page)
    items = [NotificationPublic.model_validate(row) for row in rows]
    return Page(items=items, next_cursor=next_cursor)


@router.get("/deadletters", responses=READ)
async def list_dead_letters(
    _: Viewer,
    engine: EngineDep,
    page: PageParams,
    consumer: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[DeadLetterPublic]:
    """Newest first, each with its latest re-drive."""
    rows, next_cursor = await queries.list_dead_letters(engine, consumer, page)
    items = [DeadLetterPublic.model_validate(row) for row in rows]
    return Page(items=items, next_cursor=next_cursor)


async def _dead_letter(engine: Any, dead_letter_id: str) -> DeadLetterPublic:
    row = await queries.get_dead_letter(engine, dead_letter_id)
    if row is None:
        raise NotFound(f"id: no dead letter {dead_letter_id!r}", field="id")
    return DeadLetterPublic.model_validate(row)


@router.get("/deadletters/{dead_letter_id}", responses=READ_ONE)
async def get_dead_letter(
    _: Viewer, engine: EngineDep, dead_letter_id: DeadLetterId
) -> DeadLetterPublic:
    return await _dead_letter(engine, dead_letter_id)


@router.post(
    "/deadletters/{dead_letter_id}/retry",
    response_model=DeadLetterPublic,
    responses={**ACCEPTED, **COMMAND},
)
async def retry_dead_letter(
    identity: Responder, state: StateDep, engine: EngineDep, dead_letter_id: DeadLetterId
) -> Any:
    """Hand the message to its consumer's handler once more, in the service that runs it
    (the original from its stream, or the dead letter's copy once the stream let it go).
    200 with the dead letter showing the re-drive; 502 naming the reason when the handler
    fails again (the attempt is recorded); 409 when no service re-drives that consumer."""
    letter = await _dead_letter(engine, dead_letter_id)
    owner = owner_of(letter.consumer)
    if owner is None:
        raise Conflict(
            f"consumer: no service of this version runs {letter.consumer!r}", field="consumer"
        )
    state.health.refuse_writes()
    command = RetryDeadLetter(
        dead_letter_id=letter.id,
        consumer=letter.consumer,
        stream=letter.stream,
        stream_seq=letter.stream_seq,
        subject=letter.subject,
        deliveries=letter.deliveries,
        payload=letter.payload,
        by=identity.actor,
    )
    reply = await request_owner(
        state, subjects.retry_dead_letter(owner), command, timeout=REDRIVE_TIMEOUT_S
    )
    result = DeadLetterRetryResult.model_validate(reply)
    location = resource_path("deadletters", letter.id)
    shown = await state.progress.wait_for(
        DEAD_LETTERS_PROJECTION, result.seq, state.consistency_wait_s
    )
    if not shown:
        done = CommandResult(
            aggregate_id=letter.id, version=result.attempt, seq=result.seq, stream=result.stream
        )
        return accepted(done, location)
    return await _dead_letter(engine, letter.id)
