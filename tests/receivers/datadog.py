"""A DataDog-like API: ``POST /api/v1/events`` and ``POST /api/v2/series`` validated
against the documented request bodies, authenticated by ``DD-API-KEY`` (and
``DD-APPLICATION-KEY`` when one is expected).

https://docs.datadoghq.com/api/latest/events/#post-an-event
https://docs.datadoghq.com/api/latest/metrics/#submit-metrics
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.receivers.scripted import Invalid, ScriptedReceiver

EVENT_FIELDS = {
    "aggregation_key",
    "alert_type",
    "date_happened",
    "device_name",
    "host",
    "priority",
    "related_event_id",
    "source_type_name",
    "tags",
    "text",
    "title",
}
ALERT_TYPES = {"error", "warning", "info", "success", "user_update", "recommendation", "snapshot"}
SERIES_FIELDS = {
    "metric",
    "type",
    "points",
    "tags",
    "resources",
    "unit",
    "interval",
    "metadata",
    "source_type_name",
}
MAX_SERIES_BYTES = 512_000
MAX_PAST_S = 3600
MAX_FUTURE_S = 600


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def _strings(value: Any, what: str) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid(f"{what} must be a list of strings")


def check_event(body: Any) -> None:
    if not isinstance(body, dict):
        raise Invalid("the event must be an object")
    unknown = set(body) - EVENT_FIELDS
    if unknown:
        raise Invalid(f"unknown fields {sorted(unknown)}")
    for name in ("title", "text"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise Invalid(f"{name} is required")
    if len(body["text"]) > 4000:
        raise Invalid("text is limited to 4000 characters")
    if len(body.get("aggregation_key", "")) > 100:
        raise Invalid("aggregation_key is limited to 100 characters")
    if body.get("alert_type", "info") not in ALERT_TYPES:
        raise Invalid(f"alert_type {body['alert_type']!r} is not one of {sorted(ALERT_TYPES)}")
    if body.get("priority", "normal") not in ("normal", "low"):
        raise Invalid("priority must be normal or low")
    if "date_happened" in body and not isinstance(body["date_happened"], int):
        raise Invalid("date_happened must be an integer POSIX timestamp")
    if "tags" in body:
        _strings(body["tags"], "tags")


def check_series(body: Any, now: float | None = None) -> None:
    now = time.time() if now is None else now
    if not isinstance(body, dict) or not isinstance(body.get("series"), list):
        raise Invalid("series is required")
    for n, series in enumerate(body["series"]):
        where = f"series[{n}]"
        if not isinstance(series, dict):
            raise Invalid(f"{where} must be an object")
        unknown = set(series) - SERIES_FIELDS
        if unknown:
            raise Invalid(f"{where}: unknown fields {sorted(unknown)}")
        if not isinstance(series.get("metric"), str) or not series["metric"]:
            raise Invalid(f"{where}.metric is required")
        if series.get("type", 0) not in (0, 1, 2, 3):
            raise Invalid(f"{where}.type must be 0, 1, 2 or 3")
        points = series.get("points")
        if not isinstance(points, list) or not points:
            raise Invalid(f"{where}.points is required")
        for point in points:
            if not isinstance(point, dict) or set(point) != {"timestamp", "value"}:
                raise Invalid(f"{where}: a point is {{timestamp, value}}")
            if not isinstance(point["timestamp"], int):
                raise Invalid(f"{where}: timestamp must be an integer")
            if not now - MAX_PAST_S <= point["timestamp"] <= now + MAX_FUTURE_S:
                raise Invalid(f"{where}: timestamp outside the accepted window")
            if not isinstance(point["value"], int | float):
                raise Invalid(f"{where}: value must be a number")
        if "tags" in series:
            _strings(series["tags"], f"{where}.tags")
        for resource in series.get("resources", []):
            if not isinstance(resource, dict) or set(resource) != {"name", "type"}:
                raise Invalid(f"{where}: a resource is {{name, type}}")


class DatadogReceiver(ScriptedReceiver):
    accepted_status = 202

    def __init__(self, api_key: str = "dd-api-key", app_key: str | None = None):
        super().__init__()
        self.api_key = api_key
        self.app_key = app_key
        self.route("POST", "/api/v1/events", self._event)
        self.route("POST", "/api/v2/series", self._series)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [r.body for r in self.received if r.path == "/api/v1/events"]

    @property
    def series(self) -> list[dict[str, Any]]:
        """Every series of every accepted v2 request, in order."""
        return [s for r in self.received if r.path == "/api/v2/series" for s in r.body["series"]]

    def points(self, metric: str) -> list[float]:
        return [p["value"] for s in self.series if s["metric"] == metric for p in s["points"]]

    async def _authenticated(self, request: web.Request) -> tuple[dict[str, str], Any]:
        if request.headers.get("DD-API-KEY") != self.api_key:
            raise Forbidden()
        if self.app_key is not None and request.headers.get("DD-APPLICATION-KEY") != self.app_key:
            raise Forbidden()
        if request.content_type != "application/json":
            raise Invalid("Content-Type must be application/json")
        body = await request.read()
        try:
            return dict(request.headers), orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Invalid("the body is not JSON") from exc

    async def _event(self, request: web.Request) -> Received:
        headers, body = await self._authenticated(request)
        check_event(body)
        return Received(request.path, headers, body)

    async def _series(self, request: web.Request) -> Received:
        if request.content_length is not None and request.content_length > MAX_SERIES_BYTES:
            raise Invalid("the payload is limited to 500 kB")
        headers, body = await self._authenticated(request)
        check_series(body)
        return Received(request.path, headers, body)

    def response_for(self, record: Any) -> web.StreamResponse:
        if record.path == "/api/v1/events":
            return web.json_response({"status": "ok", "event": record.body}, status=202)
        return web.json_response({"errors": []}, status=202)


class Forbidden(Invalid):
    """DataDog answers 403 to a missing or wrong key."""

    status = 403

    def __init__(self) -> None:
        super().__init__("Forbidden")
