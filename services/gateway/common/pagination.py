"""Lists page with a cursor: ``?limit=`` (1..1000, default 100) and ``?cursor=``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

MAX_LIMIT = 1000
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many items")]
