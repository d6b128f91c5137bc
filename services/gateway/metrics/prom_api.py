"""Prometheus' HTTP query API at Prometheus' own paths, so Grafana's Prometheus data source
(and promtool, and any Prometheus client) can point at the gateway.

Each route accepts GET and POST with a form body (Grafana POSTs by default) and answers
Prometheus' envelope: ``{"status": "success", "data": ...}`` or ``{"status": "error",
"errorType": ..., "error": ...}`` with Prometheus' statuses (400 bad_data, 422
execution, 503 timeout or unavailable). Callers authenticate as on the rest of the API
and need the viewer role; an ingest key only writes. The metrics service evaluates the
queries (``services/metrics/query_api.py``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.gateway.common.errors import AUTHENTICATED, problems
from services.gateway.common.owners import request_owner_json
from services.gateway.common.routes import Viewer
from services.gateway.common.state import GatewayState, StateDep
from services.gateway.metrics.prom_api_params import (
    FORM,
    BadParameter,
    Params,
    label_name,
    limit_param,
    lookup_window,
    query_param,
    range_window,
    read_params,
    time_param,
    timeout_s,
)
from shared import commands
from shared.errors import InvalidInput, Unavailable, VigilError

# the Prometheus release whose API this one follows: Grafana reads buildinfo's version
# to choose the features it uses
PROMETHEUS_VERSION = "2.53.0"
# what a lookup (series, labels) may take before the service answers it
LOOKUP_TIMEOUT_S = 30.0
# the gateway waits this much beyond the query's own deadline for the service's answer
REPLY_MARGIN_S = 5.0
SUCCESS_PREFIX = b'{"status":"success"'

STATUS_BY_ERROR_TYPE = {
    "bad_data": 400,
    "execution": 422,
    "timeout": 503,
    "canceled": 503,
    "unavailable": 503,
    "not_found": 404,
    "internal": 502,
}

router = APIRouter(prefix="/api/v1", tags=["prometheus"])

ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["success", "error"]},
        "data": {},
        "errorType": {"type": "string"},
        "error": {"type": "string"},
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["status"],
}
PROM_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": description,
        "content": {"application/json": {"schema": ENVELOPE_SCHEMA}},
    }
    for status, description in (
        (400, "bad_data: a parameter is missing or malformed (the message names it)"),
        (422, "execution: the query could not be evaluated"),
        (503, "timeout or unavailable: the query ran out of time or the store did not answer"),
    )
}
RESPONSES = {
    200: {
        "description": "Prometheus' success envelope",
        "content": {"application/json": {"schema": ENVELOPE_SCHEMA}},
    },
    **problems(*AUTHENTICATED),
    **PROM_ERRORS,
}
FORM_BODY = {
    "requestBody": {
        "required": False,
        "description": "The same parameters as a form (Grafana's default)",
        "content": {FORM: {"schema": {"type": "object", "additionalProperties": True}}},
    }
}


def envelope_response(envelope: dict[str, Any]) -> JSONResponse:
    """Prometheus' envelope with the HTTP status Prometheus gives it."""
    status = 200
    if envelope.get("status") != "success":
        status = STATUS_BY_ERROR_TYPE.get(str(envelope.get("errorType")), 422)
    return JSONResponse(envelope, status_code=status)


def error_response(error_type: str, message: str) -> JSONResponse:
    return envelope_response({"status": "error", "errorType": error_type, "error": message})


def success_response(data: Any) -> JSONResponse:
    return envelope_response({"status": "success", "data": data})


async def ask(state: GatewayState, subject: str, query: BaseModel, wait_s: float) -> Response:
    """The metrics service's envelope for ``query``, errors turned into Prometheus'.

    A success is passed on as the bytes the metrics service wrote: a chart's thousands of
    points are not decoded and encoded again here.
    """
    started = time.monotonic()
    try:
        raw = await request_owner_json(state, subject, query, timeout=wait_s + REPLY_MARGIN_S)
        if raw.startswith(SUCCESS_PREFIX):
            return Response(raw, media_type="application/json")
        envelope = orjson.loads(raw)
    except InvalidInput as exc:
        return error_response("bad_data", exc.message)
    except Unavailable as exc:
        if time.monotonic() - started >= wait_s:
            return error_response("timeout", f"query timed out after {wait_s:g}s: {exc.message}")
        return error_response("unavailable", exc.message)
    except VigilError as exc:
        return error_response("internal", exc.message)
    if not isinstance(envelope, dict):
        return error_response("internal", f"{subject} answered something that is not an envelope")
    return envelope_response(envelope)


Handler = Callable[[Params, GatewayState], Awaitable[Response]]


def prometheus_endpoint(handler: Handler) -> Callable[..., Awaitable[Response]]:
    """A route function for ``handler``: authenticated, parameters read from the query
    string and the form body, a bad one answered 400 bad_data."""

    async def endpoint(_: Viewer, request: Request, state: StateDep) -> Response:
        try:
            params = await read_params(request)
            return await handler(params, state)
        except BadParameter as exc:
            return error_response("bad_data", exc.message)

    return endpoint


def prometheus_route(
    path: str, name: str, summary: str, methods: tuple[str, ...]
) -> Callable[[Handler], Handler]:
    """Register ``handler`` at ``path`` for ``methods``: GET documented, POST taking a
    form body, HEAD; each answers a Prometheus envelope."""

    def register(handler: Handler) -> Handler:
        endpoint = prometheus_endpoint(handler)
        for method in methods:
            router.add_api_route(
                path,
                endpoint,
                methods=[method],
                name=f"{name}_{method.lower()}",
                summary=summary,
                description=(handler.__doc__ or "").strip()
                + "\n\nAlso POST with the parameters as an application/x-www-form-urlencoded body.",
                responses=RESPONSES,
                response_class=JSONResponse,
                include_in_schema=method == "GET",
                openapi_extra=FORM_BODY if method == "POST" else None,
            )
        return handler

    return register


QUERY_METHODS = ("GET", "POST", "HEAD")


@prometheus_route("/query", "prometheus_query", "PromQL at one instant", QUERY_METHODS)
async def instant_query(params: Params, state: GatewayState) -> Response:
    """``query`` evaluated at ``time`` (default now); ``timeout`` (default 30s)."""
    query = query_param(params)
    at = time_param(params, "time", round(time.time() * 1000))
    deadline = timeout_s(params)
    command = commands.PromInstantQuery(query=query, time_ms=at, timeout_s=deadline)
    return await ask(state, commands.PROM_INSTANT_QUERY, command, deadline)


@prometheus_route("/query_range", "prometheus_query_range", "PromQL over a range", QUERY_METHODS)
async def range_query(params: Params, state: GatewayState) -> Response:
    """``query`` evaluated every ``step`` (a duration or float seconds) from ``start`` to
    ``end``, at most 11,000 points per series."""
    query = query_param(params)
    start, end, step = range_window(params)
    deadline = timeout_s(params)
    command = commands.PromRangeQuery(
        query=query, start_ms=start, end_ms=end, step_ms=step, timeout_s=deadline
    )
    return await ask(state, commands.PROM_RANGE_QUERY, command, deadline)


@prometheus_route("/series", "prometheus_series", "Series matching selectors", QUERY_METHODS)
async def find_series(params: Params, state: GatewayState) -> Response:
    """Label sets of the series matching any ``match[]`` selector between ``start`` and
    ``end``; ``limit`` caps how many."""
    match = params.all("match[]")
    if not match:
        raise BadParameter("no match[] parameter provided")
    start, end = lookup_window(params)
    command = commands.PromSeriesQuery(
        match=match, start_ms=start, end_ms=end, limit=limit_param(params)
    )
    return await ask(state, commands.PROM_SERIES, command, LOOKUP_TIMEOUT_S)


@prometheus_route("/labels", "prometheus_labels", "Label names", QUERY_METHODS)
async def label_names(params: Params, state: GatewayState) -> Response:
    """Label names of the series matching any ``match[]`` (of every series without one)."""
    start, end = lookup_window(params)
    command = commands.PromLabelsQuery(
        match=params.all("match[]"), start_ms=start, end_ms=end, limit=limit_param(params)
    )
    return await ask(state, commands.PROM_LABELS, command, LOOKUP_TIMEOUT_S)


async def label_values(_: Viewer, name: str, request: Request, state: StateDep) -> Response:
    """Values of label ``name`` (``__name__``: metric names) over the series matching any
    ``match[]`` between ``start`` and ``end``; ``limit`` caps how many."""
    try:
        params = await read_params(request)
        start, end = lookup_window(params)
        command = commands.PromLabelValuesQuery(
            name=label_name(name),
            match=params.all("match[]"),
            start_ms=start,
            end_ms=end,
            limit=limit_param(params),
        )
    except BadParameter as exc:
        return error_response("bad_data", exc.message)
    return await ask(state, commands.PROM_LABEL_VALUES, command, LOOKUP_TIMEOUT_S)


for _method in ("GET", "HEAD"):
    router.add_api_route(
        "/label/{name}/values",
        label_values,
        methods=[_method],
        name=f"prometheus_label_values_{_method.lower()}",
        summary="Values of one label",
        responses={**RESPONSES, **problems(422)},
        response_class=JSONResponse,
        include_in_schema=_method == "GET",
    )


@prometheus_route("/status/buildinfo", "prometheus_buildinfo", "Build information", ("GET", "HEAD"))
async def buildinfo(params: Params, state: GatewayState) -> Response:
    """The Prometheus version this API follows (Grafana reads it to pick its features)."""
    return success_response(
        {
            "version": PROMETHEUS_VERSION,
            "revision": "vigil",
            "branch": "vigil",
            "buildUser": "vigil",
            "buildDate": "",
            "goVersion": "",
        }
    )


@prometheus_route("/metadata", "prometheus_metadata", "Metric metadata", ("GET", "POST", "HEAD"))
async def metadata(params: Params, state: GatewayState) -> Response:
    """Metric types and help texts: none are stored, so an empty map."""
    return success_response({})


@prometheus_route(
    "/query_exemplars", "prometheus_query_exemplars", "Exemplars", ("GET", "POST", "HEAD")
)
async def query_exemplars(params: Params, state: GatewayState) -> Response:
    """Exemplars of ``query``: none are stored, so an empty list."""
    query_param(params)
    return success_response([])
