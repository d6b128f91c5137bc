"""Bodies of the silences section, in Alertmanager's v2 shape (``gettableSilence``,
``postableSilence``), so what amtool sends and reads works unchanged."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.gateway.common.schemas import UtcDateTime
from shared.commands import PostableSilence
from shared.events import SilenceMatcher

SilenceState = Literal["active", "pending", "expired"]


class SilenceStatus(BaseModel):
    state: SilenceState = Field(
        description="pending: starts later; active: in force; expired: ended (by its end "
        "time or by someone)"
    )


class GettableSilence(BaseModel):
    """A silence as Alertmanager's ``GET /api/v2/silences`` shows it."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: str
    status: SilenceStatus
    updated_at: UtcDateTime = Field(alias="updatedAt")
    matchers: list[SilenceMatcher]
    starts_at: UtcDateTime = Field(alias="startsAt")
    ends_at: UtcDateTime = Field(alias="endsAt")
    created_by: str = Field(alias="createdBy")
    comment: str

    @classmethod
    def of(cls, row: Any, now: datetime) -> GettableSilence:
        view = cls.model_validate(
            {
                "id": row["id"],
                "status": {"state": "active"},
                "updatedAt": row["updated_at"],
                "matchers": row["matchers"],
                "startsAt": row["starts_at"],
                "endsAt": row["ends_at"],
                "createdBy": row["created_by"],
                "comment": row["comment"],
            }
        )
        state: SilenceState = "active"
        if now >= view.ends_at:
            state = "expired"
        elif now < view.starts_at:
            state = "pending"
        return view.model_copy(update={"status": SilenceStatus(state=state)})


class PostedSilence(BaseModel):
    """What Alertmanager answers a POST: the silence's id (a new one when the change
    replaced the silence)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    silence_id: str = Field(alias="silenceID")


def postable_schema() -> dict[str, Any]:
    """The request body's JSON schema, nested models inlined (it is not a component)."""
    schema = PostableSilence.model_json_schema(by_alias=True)
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined
