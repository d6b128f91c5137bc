"""Cursor pages for the identity and audit lists: ``{"items", "next_cursor"}``; the cursor
is opaque to clients (the last row's sort key, encoded)."""

from __future__ import annotations

import base64
from typing import Annotated, Any

import orjson
from fastapi import Query

from shared.errors import InvalidInput

LimitParam = Annotated[int, Query(ge=1, le=1000, description="At most this many items (1..1000)")]
CursorParam = Annotated[
    str | None,
    Query(max_length=500, description="next_cursor of the previous page; none: the first page"),
]


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Any:
    if cursor is None:
        return None
    try:
        return orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise InvalidInput("cursor: not a cursor this list gave out", field="cursor") from None
