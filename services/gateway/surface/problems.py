"""Refusals the surface answers itself, in the API's one error shape (RFC 9457)."""

from __future__ import annotations

from http import HTTPStatus

import orjson
from starlette.types import Scope, Send

PROBLEM_MEDIA_TYPE = b"application/problem+json"


def problem_body(status: int, detail: str, field: str | None, instance: str) -> bytes:
    body: dict[str, object] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if field:
        body["field"] = field
    body["instance"] = instance
    return orjson.dumps(body)


async def send_problem(
    scope: Scope, send: Send, status: int, detail: str, field: str | None = None
) -> None:
    body = problem_body(status, detail, field, scope.get("path", ""))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
