"""Lists page with a cursor: ``?limit=`` (1..1000, default 100) and ``?cursor=``.

The cursor is opaque to clients: the sort key of the last item sent, so a page starts
right after it (keyset paging). Items added meanwhile never shift a page, as offsets
would.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Column, DateTime, Select, and_, or_
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from shared.errors import InvalidInput

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CURSOR_CHARS = 1000

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``?cursor=`` for the next one."""

    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="The cursor of the next page; null on the last one"
    )


@dataclass(frozen=True)
class PageRequest:
    limit: int
    cursor: str | None


async def page_request(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"At most this many items (≤ {MAX_LIMIT})")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_CURSOR_CHARS,
            description="next_cursor of the previous page; none for the first page",
        ),
    ] = None,
) -> PageRequest:
    return PageRequest(limit, cursor)


PageParams = Annotated[PageRequest, Depends(page_request)]

# a sort: columns, each descending or not; the last column must make the order total
Order = Sequence[tuple[Column[Any], bool]]


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def encode_cursor(row: RowMapping, order: Order) -> str:
    key = [_encode(row[column.name]) for column, _ in order]
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str, order: Order) -> list[Any]:
    refused = InvalidInput("cursor: not a cursor this list gave out", field="cursor")
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise refused from None
    if not isinstance(key, list) or len(key) != len(order):
        raise refused
    values: list[Any] = []
    for (column, _), value in zip(order, key, strict=True):
        if value is None:
            raise refused
        if isinstance(column.type, DateTime):
            if not isinstance(value, str):
                raise refused
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise refused from None
        elif not isinstance(value, str | int | float) or isinstance(value, bool):
            raise refused
        values.append(value)
    return values


def _after(order: Order, values: list[Any]) -> ColumnElement[bool]:
    """Rows that sort after ``values``: (a, b) > (va, vb) spelled out per direction."""
    clauses = []
    for index, (column, descending) in enumerate(order):
        equal = [order[i][0] == values[i] for i in range(index)]
        beyond = column < values[index] if descending else column > values[index]
        clauses.append(and_(*equal, beyond))
    return or_(*clauses)


def paged(query: Select[Any], order: Order, page: PageRequest) -> Select[Any]:
    """``query`` sorted by ``order``, from after the cursor, one row more than the page
    (that row only says whether there is a next page)."""
    query = query.order_by(*(c.desc() if desc else c.asc() for c, desc in order))
    if page.cursor is not None:
        query = query.where(_after(order, decode_cursor(page.cursor, order)))
    return query.limit(page.limit + 1)


def page_of(
    rows: Sequence[RowMapping], order: Order, page: PageRequest
) -> tuple[list[RowMapping], str | None]:
    """The rows of the page and the cursor of the next one (None when this is the last)."""
    if len(rows) <= page.limit:
        return list(rows), None
    kept = list(rows[: page.limit])
    return kept, encode_cursor(kept[-1], order)


async def fetch_page(
    engine: AsyncEngine, query: Select[Any], order: Order, page: PageRequest
) -> tuple[list[RowMapping], str | None]:
    """Run ``query`` for one page: its rows and the next page's cursor."""
    async with engine.connect() as conn:
        rows = list((await conn.execute(paged(query, order, page))).mappings())
    return page_of(rows, order, page)
