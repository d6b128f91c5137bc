"""Silences: list and read for viewers; create, change and expire for responders (the role
that acknowledges alerts), through the alerts service.

The bodies are Alertmanager's, at both paths; errors name the field as the body writes
it (``matchers[0].value: ...``). A POST with ``Idempotency-Key`` (or the same body sent
again within minutes) answers the silence the first one made.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.common.errors import COMMAND, READ, READ_ONE
from services.gateway.common.owners import ACCEPTED, accepted, send_command
from services.gateway.common.paths import PREFIX, resource_path
from services.gateway.common.routes import Responder, Viewer
from services.gateway.common.state import EngineDep, StateDep
from services.gateway.silences import queries
from services.gateway.silences.projector import PROJECTION_NAME
from services.gateway.silences.schemas import GettableSilence, PostedSilence, postable_schema
from shared import commands
from shared.commands import CreateSilence, ExpireSilence, PostableSilence, parse_command
from shared.errors import InvalidInput, NotFound
from shared.events import utcnow
from shared.matchers import Matcher, MatcherError, parse_matcher

router = APIRouter(prefix=f"{PREFIX}/silences", tags=["silences"])
alertmanager = APIRouter(prefix="/api/v2", tags=["alertmanager"])

MAX_FILTERS = 32
STATE_ORDER = {"active": 0, "pending": 1, "expired": 2}

SilenceId = Annotated[str, Path(min_length=1, max_length=100, description="The silence's id")]
Filter = Annotated[
    list[str] | None,
    Query(
        max_length=MAX_FILTERS,
        description='Matchers, as Alertmanager takes them (filter=alertname="HighCPU"): a '
        "silence is listed when it has a matcher of each name whose value they match",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="A POST sent again with the same key answers the silence the first made",
    ),
]
POST_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": postable_schema()}},
    }
}


def location(silence_id: str) -> str:
    return resource_path("silences", silence_id)


# --- reading -------------------------------------------------------------------------


def parse_filters(texts: list[str] | None) -> list[Matcher]:
    found = []
    for index, text in enumerate(texts or []):
        try:
            found.append(parse_matcher(text))
        except MatcherError as exc:
            field = f"filter[{index}]"
            raise InvalidInput(f"{field}: {exc.message}", field=field) from None
    return found


def shown(silence: GettableSilence, filters: list[Matcher]) -> bool:
    """Alertmanager's filter: each filter names a matcher of the silence whose value it
    matches."""
    values = {m.name: m.value for m in silence.matchers}
    return all(f.name in values and f.matches_value(values[f.name]) for f in filters)


def ordered(silences: list[GettableSilence]) -> list[GettableSilence]:
    """As Alertmanager lists them: active by end, pending by start, then expired newest
    first."""

    def key(s: GettableSilence) -> tuple[int, float]:
        state = s.status.state
        if state == "active":
            return 0, s.ends_at.timestamp()
        if state == "pending":
            return 1, s.starts_at.timestamp()
        return 2, -s.ends_at.timestamp()

    return sorted(silences, key=key)


async def listed(engine: AsyncEngine, texts: list[str] | None) -> list[GettableSilence]:
    filters = parse_filters(texts)
    now = utcnow()
    views = [GettableSilence.of(row, now) for row in await queries.list_silences(engine, now)]
    return ordered([v for v in views if shown(v, filters)])


async def load(engine: AsyncEngine, silence_id: str, now: datetime) -> GettableSilence | None:
    row = await queries.get_silence(engine, silence_id)
    return None if row is None else GettableSilence.of(row, now)


async def one(engine: AsyncEngine, silence_id: str) -> GettableSilence:
    found = await load(engine, silence_id, utcnow())
    if found is None:
        raise NotFound(f"silence_id: no silence {silence_id!r}", field="silence_id")
    return found


# --- changing ----------------------------------------------------------------------


async def read_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"body: not valid JSON: {exc}", field="body") from None
    if not isinstance(body, dict):
        raise InvalidInput("body: must be a JSON object (a postableSilence)", field="body")
    return body


async def post(
    request: Request, state: StateDep, actor: str, idempotency_key: str | None
) -> tuple[str, bool]:
    """Send the create command; (the silence's id, whether the read model shows it)."""
    postable = parse_command(PostableSilence, await read_body(request), indexed=True)
    command = CreateSilence.model_validate(
        {
            **postable.model_dump(by_alias=True, exclude_none=True),
            "request_id": idempotency_key or "",
            "by": actor,
        }
    )
    outcome = await send_command(state, commands.CREATE_SILENCE, command, PROJECTION_NAME)
    return outcome.result.aggregate_id, outcome.shown


async def expire(state: StateDep, silence_id: str, actor: str) -> Any:
    command = ExpireSilence(silence_id=silence_id, by=actor)
    return await send_command(state, commands.EXPIRE_SILENCE, command, PROJECTION_NAME)


# --- /api/monitoring/silences ---------------------------------------------------------


@router.get("", responses=READ)
async def list_silences(
    _: Viewer, engine: EngineDep, filter: Filter = None
) -> list[GettableSilence]:
    """Every silence in force or to come, then the latest ended: active by end time,
    pending by start time, expired newest first (as Alertmanager lists them)."""
    return await listed(engine, filter)


@router.post("", response_model=PostedSilence, responses={**COMMAND}, openapi_extra=POST_BODY)
async def create_silence(
    identity: Responder, request: Request, state: StateDep, idempotency_key: IdempotencyKey = None
) -> Any:
    """Alertmanager's body: ``matchers`` (``name``, ``value``, ``isRegex``, ``isEqual``),
    ``startsAt``, ``endsAt``, ``createdBy``, ``comment``; with ``id``, a change to that
    silence. Matching alerts still fire and are recorded; they page nobody until it ends."""
    silence_id, _ = await post(request, state, identity.actor, idempotency_key)
    body = PostedSilence(silenceID=silence_id).model_dump(by_alias=True)
    return JSONResponse(body, headers={"Location": location(silence_id)})


@router.get("/{silence_id}", responses=READ_ONE)
async def get_silence(_: Viewer, engine: EngineDep, silence_id: SilenceId) -> GettableSilence:
    return await one(engine, silence_id)


@router.delete("/{silence_id}", response_model=GettableSilence, responses={**ACCEPTED, **COMMAND})
async def expire_silence(
    identity: Responder, state: StateDep, engine: EngineDep, silence_id: SilenceId
) -> Any:
    """Ends the silence now (one not yet started never starts); what it silenced and still
    fires pages then. 409 when it has ended already."""
    outcome = await expire(state, silence_id, identity.actor)
    if not outcome.shown:
        return accepted(outcome.result, location(silence_id))
    return await one(engine, silence_id)


# --- Alertmanager's v2 paths ----------------------------------------------------------


@alertmanager.get("/silences", responses=READ)
async def alertmanager_list_silences(
    _: Viewer, engine: EngineDep, filter: Filter = None
) -> list[GettableSilence]:
    """Alertmanager's ``GET /api/v2/silences``."""
    return await listed(engine, filter)


@alertmanager.post(
    "/silences", response_model=PostedSilence, responses={**COMMAND}, openapi_extra=POST_BODY
)
async def alertmanager_post_silences(
    identity: Responder, request: Request, state: StateDep, idempotency_key: IdempotencyKey = None
) -> Any:
    """Alertmanager's ``POST /api/v2/silences`` (``amtool silence add``)."""
    silence_id, _ = await post(request, state, identity.actor, idempotency_key)
    return PostedSilence(silenceID=silence_id).model_dump(by_alias=True)


@alertmanager.get("/silence/{silence_id}", responses=READ_ONE)
async def alertmanager_get_silence(
    _: Viewer, engine: EngineDep, silence_id: SilenceId
) -> GettableSilence:
    """Alertmanager's ``GET /api/v2/silence/{silenceID}``."""
    return await one(engine, silence_id)


@alertmanager.delete(
    "/silence/{silence_id}", responses={200: {"description": "Expired"}, **COMMAND}
)
async def alertmanager_delete_silence(
    identity: Responder, state: StateDep, silence_id: SilenceId
) -> Response:
    """Alertmanager's ``DELETE /api/v2/silence/{silenceID}`` (``amtool silence expire``)."""
    await expire(state, silence_id, identity.actor)
    return Response(status_code=200)
