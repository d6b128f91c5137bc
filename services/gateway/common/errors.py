"""One error body everywhere: RFC 9457 problem details (``application/problem+json``).

``{"type": "about:blank", "title": "Not Found", "status": 404, "detail": "<field>:
<problem>", "field": "<field>", "instance": "<path>"}`` — ``detail`` is the human
sentence clients show, ``field`` names the input at fault when there is one. Domain
errors from any owner, FastAPI's own validation and routing errors, and anything
unexpected all leave through here. Each router declares the statuses it can answer
with ``problems(...)`` so the OpenAPI document describes the bodies really sent.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import Overloaded, Unavailable, VigilError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
ACTOR_FIELDS = ("by", "author")
# a response's extension key for error bodies a protocol route sends besides problem details
PROTOCOL_ERROR_CONTENT = "x-protocol-content"
ACTOR_REFUSAL = "the actor is the authenticated identity; do not send it"


class ProblemDetails(BaseModel):
    """An error (RFC 9457): ``detail`` says what is wrong, ``field`` names the input."""

    type: str = Field(default="about:blank", description="Always about:blank: see status")
    title: str = Field(description="The HTTP reason phrase of the status")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(description='What is wrong, "<field>: <problem>" when a field is')
    field: str | None = Field(default=None, description="The input at fault, when one is")
    instance: str | None = Field(default=None, description="The path that was requested")


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(
    request: Request | None,
    status: int,
    detail: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": reason(status),
        "status": status,
        "detail": detail,
    }
    if field:
        body["field"] = field
    if request is not None:
        body["instance"] = request.url.path
    return ProblemResponse(body, status_code=status, headers=headers)


def http_status(exc: VigilError) -> int:
    """The one mapping from domain errors to HTTP. An owner's internal error is the
    gateway's upstream failing (502), never a 500 of the gateway itself."""
    return 502 if exc.http_status >= 500 and not isinstance(exc, Unavailable) else exc.http_status


async def vigil_error_response(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, VigilError)
    status = http_status(exc)
    if status >= 500:
        log.warning(
            "request failed upstream",
            extra={"path": request.url.path, "status": status, "error": exc.message},
        )
    headers = {}
    if isinstance(exc, Overloaded):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return problem(request, status, exc.message, exc.field, headers)


def validation_problem(error: dict[str, Any]) -> tuple[str, str]:
    """The field and the sentence for FastAPI's first validation error."""
    if error.get("type") == "json_invalid":
        problem = error.get("ctx", {}).get("error", "invalid")
        return "body", f"not valid JSON: {problem}"
    loc = [str(part) for part in error.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:] or loc
    field = ".".join(loc) or "body"
    if error.get("type") == "extra_forbidden" and loc and loc[-1] in ACTOR_FIELDS:
        return field, ACTOR_REFUSAL
    return field, str(error.get("msg", "invalid")).removeprefix("Value error, ")


async def validation_error_response(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    field, message = validation_problem(errors[0]) if errors else ("body", "invalid")
    return problem(request, 422, f"{field}: {message}", field)


async def http_error_response(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else reason(exc.status_code)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return problem(request, exc.status_code, detail, headers=dict(exc.headers or {}))


async def unexpected_error_response(request: Request, exc: Exception) -> ProblemResponse:
    log.exception("request failed", extra={"path": request.url.path}, exc_info=exc)
    return problem(request, 500, "the gateway failed to answer this request; see its log")


def install(app: FastAPI) -> None:
    """Every error the app can shape leaves as problem details."""
    app.add_exception_handler(VigilError, vigil_error_response)
    app.add_exception_handler(RequestValidationError, validation_error_response)
    app.add_exception_handler(StarletteHTTPException, http_error_response)
    app.add_exception_handler(Exception, unexpected_error_response)


# --- what the OpenAPI document says each route can answer ---------------------

DESCRIPTIONS: dict[int, str] = {
    400: "The body is not what this route reads (e.g. not JSON)",
    401: "No credentials, or unknown, expired or revoked ones",
    403: "The identity's role does not allow this",
    404: "No such resource",
    409: "The change conflicts with the resource's state, or the item is file-managed",
    413: "The body is over the size limit",
    415: "The body's content type is not one this route accepts",
    422: "A field is invalid: detail and field name it",
    429: "Too many requests, or the system is behind: retry after Retry-After seconds",
    502: "The owning service failed to carry out the command",
    503: "The owning service or the event log cannot take this now; retry",
}
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses with the problem-details body for ``statuses``."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "model": ProblemDetails,
            "description": DESCRIPTIONS.get(status, reason(status)),
        }
        if status in (429, 503):
            entry["headers"] = RETRY_AFTER
        responses[status] = entry
    return responses


AUTHENTICATED = (401, 403, 429)
READ = problems(*AUTHENTICATED, 422)
READ_ONE = problems(*AUTHENTICATED, 404, 422)
COMMAND = problems(*AUTHENTICATED, 404, 409, 415, 422, 502, 503)


def use_problem_media_type(schema: dict[str, Any]) -> dict[str, Any]:
    """Every error response is documented with the body really sent: problem details
    under application/problem+json (FastAPI's own 422 schema is never used)."""
    problem = {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                if str(status)[0] in "45":
                    # a protocol's own error bodies (OTLP's google.rpc.Status) stay beside it
                    own = response.pop(PROTOCOL_ERROR_CONTENT, {})
                    response["content"] = {PROBLEM_MEDIA_TYPE: problem, **own}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    components.setdefault(
        "ProblemDetails",
        ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}"),
    )
    return schema
