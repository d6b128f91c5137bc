"""Targets for apprise on loopback: its JSON notification (``json://host:port/notify``,
apprise's documented ``{version, title, message, attachments, type}`` body) and an
ntfy server (``ntfy://host:port/<topic>``: ntfy's JSON publishing, ``POST /`` with
``{topic, title, message}``).

https://github.com/caronc/apprise/wiki/Notify_Custom_JSON
https://docs.ntfy.sh/publish/#publish-as-json
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.receivers.scripted import Invalid, ScriptedReceiver

APPRISE_TYPES = {"info", "success", "warning", "failure"}
NTFY_FIELDS = {
    "topic",
    "message",
    "title",
    "tags",
    "priority",
    "actions",
    "click",
    "attach",
    "markdown",
    "icon",
    "filename",
    "delay",
    "email",
    "call",
}


@dataclass(frozen=True)
class Notice:
    kind: str  # "json" or "ntfy"
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def title(self) -> str:
        return str(self.body.get("title", ""))

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))


async def _json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise Invalid("Content-Type must be application/json")
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise Invalid("the body is not JSON") from exc


class AppriseReceiver(ScriptedReceiver):
    def __init__(self, path: str = "notify"):
        super().__init__()
        self.path = path
        self.route("POST", f"/{path}", self._apprise_json)
        self.route("POST", "/", self._ntfy)

    def json_url(self) -> str:
        return f"json://{self.host}:{self.port}/{self.path}"

    def ntfy_url(self, topic: str = "vigil") -> str:
        return f"ntfy://{self.host}:{self.port}/{topic}"

    def of(self, kind: str) -> list[Notice]:
        return [notice for notice in self.received if notice.kind == kind]

    async def _apprise_json(self, request: web.Request) -> Notice:
        body = await _json(request)
        if not isinstance(body, dict):
            raise Invalid("the body must be an object")
        expected = {"version", "title", "message", "attachments", "type"}
        if set(body) != expected:
            raise Invalid(f"fields are {sorted(body)}, not {sorted(expected)}")
        if body["version"] != "1.0":
            raise Invalid("version must be 1.0")
        if not isinstance(body["message"], str) or not body["message"]:
            raise Invalid("message is required")
        if body["type"] not in APPRISE_TYPES:
            raise Invalid(f"type {body['type']!r} is not one of {sorted(APPRISE_TYPES)}")
        return Notice("json", dict(request.headers), body)

    async def _ntfy(self, request: web.Request) -> Notice:
        body = await _json(request)
        if not isinstance(body, dict):
            raise Invalid("the body must be an object")
        unknown = set(body) - NTFY_FIELDS
        if unknown:
            raise Invalid(f"unknown fields {sorted(unknown)}")
        if not isinstance(body.get("topic"), str) or not body["topic"]:
            raise Invalid("topic is required")
        if not isinstance(body.get("message", ""), str):
            raise Invalid("message must be a string")
        return Notice("ntfy", dict(request.headers), body)

    def response_for(self, record: Any) -> web.StreamResponse:
        if record.kind == "ntfy":  # ntfy answers with the message it stored
            return web.json_response({"id": "m1", "event": "message", **record.body})
        return web.Response(status=200, text="")
