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

from aiohttp import web

from tests.receivers import Received, Receiver, json_body

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


def apprise_problems(body: dict[str, Any]) -> list[str]:
    expected = {"version", "title", "message", "attachments", "type"}
    if set(body) != expected:
        return [f"fields are {sorted(body)}, not {sorted(expected)}"]
    problems = []
    if body["version"] != "1.0":
        problems.append("version must be 1.0")
    if not isinstance(body["message"], str) or not body["message"]:
        problems.append("message is required")
    if body["type"] not in APPRISE_TYPES:
        problems.append(f"type {body['type']!r} is not one of {sorted(APPRISE_TYPES)}")
    return problems


def ntfy_problems(body: dict[str, Any]) -> list[str]:
    problems = []
    unknown = set(body) - NTFY_FIELDS
    if unknown:
        problems.append(f"unknown fields {sorted(unknown)}")
    if not isinstance(body.get("topic"), str) or not body["topic"]:
        problems.append("topic is required")
    if not isinstance(body.get("message", ""), str):
        problems.append("message must be a string")
    return problems


@dataclass
class AppriseReceiver(Receiver):
    """``POST /<path>``: apprise's JSON notification; ``POST /``: ntfy."""

    path: str = "notify"

    @property
    def url(self) -> str:
        return self.json_url()

    def json_url(self) -> str:
        return f"json://{self.host}:{self.port}/{self.path}"

    def ntfy_url(self, topic: str = "vigil") -> str:
        return f"ntfy://{self.host}:{self.port}/{topic}"

    def of(self, kind: str) -> list[Notice]:
        notices = [
            Notice("ntfy" if r.path == "/" else "json", r.headers, r.json()) for r in self.accepted
        ]
        return [notice for notice in notices if notice.kind == kind]

    async def answer(self, request: Received) -> web.Response:
        if request.method != "POST" or request.path not in ("/", f"/{self.path}"):
            return web.Response(status=404)
        body, problems = json_body(request)
        if not problems:
            problems = ntfy_problems(body) if request.path == "/" else apprise_problems(body)
        if problems:
            self.reject(request, problems)
            return web.json_response({"errors": problems}, status=400)
        if request.path == "/":  # ntfy answers with the message it stored
            return web.json_response({"id": "m1", "event": "message", **body})
        return web.Response(status=200, text="")
