"""A PagerDuty Events API v2 stand-in (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/).

Checks each event as PagerDuty documents it: a 32-character routing key, an
``event_action`` of trigger/acknowledge/resolve, a ``dedup_key`` (at most 255 characters;
required to acknowledge or resolve), and for a trigger a ``payload`` with ``summary``
(at most 1024 characters), ``source`` and ``severity`` in critical/error/warning/info, an
ISO 8601 ``timestamp``, ``custom_details`` an object, links ``[{href, text}]``. Answers
like PagerDuty: 202 ``{"status": "success", "dedup_key": ...}`` or 400
``{"status": "invalid event", "errors": [...]}``; keeps each dedup key's alert state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from tests.receivers import Failure, Received, Receiver, json_body, text_problems, url_problems

TEST_ROUTING_KEY = "R0VIGILTESTROUTINGKEY00000000001"
EVENTS_PATH = "/v2/enqueue"
SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")
TOP_KEYS = {
    "routing_key",
    "event_action",
    "dedup_key",
    "payload",
    "images",
    "links",
    "client",
    "client_url",
}
PAYLOAD_KEYS = {
    "summary",
    "source",
    "severity",
    "timestamp",
    "component",
    "group",
    "class",
    "custom_details",
}


def event_problems(event: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    extra = set(event) - TOP_KEYS
    if extra:
        problems.append(f"unknown fields {sorted(extra)}")
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        problems.append("routing_key must be the 32-character integration key")
    action = event.get("event_action")
    if action not in ACTIONS:
        problems.append(f"event_action must be one of {list(ACTIONS)}")
    dedup = event.get("dedup_key")
    if dedup is not None or action in ("acknowledge", "resolve"):
        problems += text_problems(dedup, "dedup_key", 255)
    if action == "trigger":
        problems += payload_problems(event.get("payload"))
    for i, link in enumerate(event.get("links") or []):
        if not isinstance(link, dict) or set(link) - {"href", "text"}:
            problems.append(f"links[{i}] must be {{href, text}}")
            continue
        problems += url_problems(link.get("href"), f"links[{i}].href")
        problems += text_problems(link.get("text"), f"links[{i}].text", 1024, required=False)
    if "client_url" in event:
        problems += url_problems(event["client_url"], "client_url")
    return problems


def payload_problems(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["payload is required to trigger"]
    problems: list[str] = []
    extra = set(payload) - PAYLOAD_KEYS
    if extra:
        problems.append(f"payload has unknown fields {sorted(extra)}")
    problems += text_problems(payload.get("summary"), "payload.summary", 1024)
    problems += text_problems(payload.get("source"), "payload.source", 255)
    if payload.get("severity") not in SEVERITIES:
        problems.append(f"payload.severity must be one of {list(SEVERITIES)}")
    if "timestamp" in payload:
        try:
            datetime.fromisoformat(str(payload["timestamp"]))
        except ValueError:
            problems.append("payload.timestamp must be ISO 8601")
    for name in ("component", "group", "class"):
        problems += text_problems(payload.get(name), f"payload.{name}", 255, required=False)
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        problems.append("payload.custom_details must be an object")
    return problems


@dataclass
class PagerDutyAlert:
    """What PagerDuty keeps per dedup key: its state and every event that touched it."""

    dedup_key: str
    status: str
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PagerDutyReceiver(Receiver):
    alerts: dict[str, PagerDutyAlert] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.base_url + EVENTS_PATH

    def failure_response(self, failure: Failure) -> web.Response:
        headers = {"Retry-After": f"{failure.retry_after:g}"} if failure.retry_after else {}
        body = {"status": "throttled" if failure.status == 429 else "error", "message": "failure"}
        return web.json_response(body, status=failure.status, headers=headers)

    async def answer(self, request: Received) -> web.Response:
        if request.path != EVENTS_PATH or request.method != "POST":
            return web.json_response({"status": "not found"}, status=404)
        event, problems = json_body(request)
        if not problems:
            problems = event_problems(event)
        if problems:
            self.reject(request, problems)
            return web.json_response(
                {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": problems,
                },
                status=400,
            )
        dedup = event.get("dedup_key") or uuid.uuid4().hex
        status = {"trigger": "triggered", "acknowledge": "acknowledged", "resolve": "resolved"}
        alert = self.alerts.get(dedup)
        action = event["event_action"]
        if alert is None or (alert.status == "resolved" and action == "trigger"):
            alert = self.alerts[dedup] = PagerDutyAlert(dedup, status[action])
        elif alert.status != "resolved":  # a resolved alert ignores acknowledgements
            alert.status = status[action]
        alert.events.append(event)
        self.events.append(event)
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": dedup}, status=202
        )
