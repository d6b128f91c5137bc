"""What the OTLP/HTTP receivers (metrics and logs) share: the encodings they accept,
errors as a ``google.rpc.Status`` in the request's encoding, and their OpenAPI answers."""

from __future__ import annotations

import math
from typing import Any

from fastapi import Response

from services.gateway.common.errors import (
    AUTHENTICATED,
    PROTOCOL_ERROR_CONTENT,
    http_status,
    problems,
)
from services.gateway.metrics.otlp import JSON, PROTOBUF, status_body
from shared.errors import Overloaded, VigilError

# google.rpc.Code for the HTTP statuses these receivers answer with
RPC_CODES = {400: 3, 401: 16, 403: 7, 413: 8, 415: 3, 422: 3, 429: 8, 502: 14, 503: 14}

BODY_SCHEMA = {"type": "string", "format": "binary"}
REQUEST_CONTENT = {PROTOBUF: {"schema": BODY_SCHEMA}, JSON: {"schema": {"type": "object"}}}
_STATUS = {
    "type": "object",
    "description": "google.rpc.Status: code (google.rpc.Code) and message",
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
    "required": ["code", "message"],
}
# errors found once the request is read carry a google.rpc.Status in its encoding;
# authentication and the HTTP surface answer problem details
_STATUS_CONTENT = {
    PROTOCOL_ERROR_CONTENT: {PROTOBUF: {"schema": BODY_SCHEMA}, JSON: {"schema": _STATUS}}
}


class UnsupportedEncoding(VigilError):
    kind = "unsupported_media_type"
    http_status = 415


def gzipped(content_encoding: str | None) -> bool:
    """Whether the body is gzip; 415 for any encoding but gzip and none."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise UnsupportedEncoding(
            f"Content-Encoding: {encoding[:20]} is not accepted; send gzip or none",
            field="Content-Encoding",
        )
    return encoding == "gzip"


def status_response(exc: VigilError, media: str) -> Response:
    status = http_status(exc)
    headers = {}
    if isinstance(exc, Overloaded):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return Response(
        status_body(RPC_CODES.get(status, 2), exc.message, media),
        status_code=status,
        media_type=media,
        headers=headers,
    )


def otlp_responses(behind: str, answer: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answers: ``behind`` says who a 429 waits for, ``answer`` names the
    export response message."""
    responses = problems(*AUTHENTICATED, 400, 413, 415, 422, 503)
    responses[429] = {**responses[429], "description": behind}
    for status in (400, 413, 415, 422, 429, 503):
        responses[status].update(_STATUS_CONTENT)
    responses[200] = {
        "description": f"{answer} in the request's encoding",
        "content": REQUEST_CONTENT,
    }
    return responses
