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

from aiohttp import web

from tests.receivers import Received, Receiver, json_body


class Invalid(Exception):
    """The body breaks the documented format; the message says how."""


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
EVENTS_PATH = "/api/v1/events"
SERIES_PATH = "/api/v2/series"
MAX_PAST_S = 3600
MAX_FUTURE_S = 600


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


@dataclass
class DatadogReceiver(Receiver):
    """``api_key`` (and ``app_key`` when given) must come as ``DD-API-KEY`` /
    ``DD-APPLICATION-KEY``; a wrong key gets 403 like DataDog's."""

    api_key: str = "dd-api-key"
    app_key: str | None = None

    @property
    def url(self) -> str:
        """The channel's ``api_url``."""
        return self.base_url

    def _bodies(self, path: str) -> list[dict[str, Any]]:
        return [r.json() for r in self.accepted if r.path == path]

    @property
    def events(self) -> list[dict[str, Any]]:
        return self._bodies(EVENTS_PATH)

    @property
    def series(self) -> list[dict[str, Any]]:
        """Every series of every accepted v2 request, in order."""
        return [s for body in self._bodies(SERIES_PATH) for s in body["series"]]

    def points(self, metric: str) -> list[float]:
        return [p["value"] for s in self.series if s["metric"] == metric for p in s["points"]]

    async def answer(self, request: Received) -> web.Response:
        if request.method != "POST" or request.path not in (EVENTS_PATH, SERIES_PATH):
            return web.json_response({"errors": ["Not found"]}, status=404)
        keys_ok = request.headers.get("DD-API-KEY") == self.api_key and (
            self.app_key is None or request.headers.get("DD-APPLICATION-KEY") == self.app_key
        )
        if not keys_ok:
            self.reject(request, ["Forbidden: wrong or missing DD-API-KEY/DD-APPLICATION-KEY"])
            return web.json_response({"errors": ["Forbidden"]}, status=403)
        body, problems = json_body(request)
        if not problems:
            try:
                if request.path == EVENTS_PATH:
                    check_event(body)
                else:
                    if len(request.body) > MAX_SERIES_BYTES:
                        raise Invalid("the payload is limited to 500 kB")
                    check_series(body)
            except Invalid as exc:
                problems = [str(exc)]
        if problems:
            self.reject(request, problems)
            return web.json_response({"errors": problems}, status=400)
        if request.path == EVENTS_PATH:
            return web.json_response({"status": "ok", "event": body}, status=202)
        return web.json_response({"errors": []}, status=202)
