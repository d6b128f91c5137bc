"""A Discord webhook stand-in (https://discord.com/developers/docs/resources/webhook#execute-webhook).

Checks the documented limits: content 2000 characters, at most 10 embeds; per embed a
title of 256, a description of 4096, at most 25 fields with a non-empty name (256) and
value (1024), a footer of 2048, an integer colour, an ISO 8601 timestamp, and 6000
characters across all embeds; ``allowed_mentions.parse`` from roles/users/everyone.
Answers like Discord: 204 (or 200 with the message under ``?wait=true``), 400
``{"code": 50035, ...}``, 404 for an unknown webhook, and 429 with both a JSON
``retry_after`` in seconds (fractional) and the ``Retry-After`` header.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from tests.receivers import Failure, Received, Receiver, json_body, text_problems, url_problems

WEBHOOK_PATH = "/api/webhooks/1234567890/vigil-test-token"
TOP_KEYS = {"content", "username", "avatar_url", "tts", "embeds", "allowed_mentions", "flags"}
EMBED_KEYS = {"title", "description", "url", "timestamp", "color", "fields", "footer", "author"}
MENTIONS = {"roles", "users", "everyone"}


def embed_problems(embed: Any, where: str) -> tuple[list[str], int]:
    """What Discord refuses in one embed, and how many characters it counts against 6000."""
    if not isinstance(embed, dict):
        return [f"{where} must be an object"], 0
    problems: list[str] = []
    extra = set(embed) - EMBED_KEYS
    if extra:
        problems.append(f"{where} has unknown fields {sorted(extra)}")
    problems += text_problems(embed.get("title"), f"{where}.title", 256, required=False)
    problems += text_problems(
        embed.get("description"), f"{where}.description", 4096, required=False
    )
    if "url" in embed:
        problems += url_problems(embed["url"], f"{where}.url", 2048)
    color = embed.get("color")
    if color is not None and (not isinstance(color, int) or not 0 <= color <= 0xFFFFFF):
        problems.append(f"{where}.color must be an integer RGB value")
    if "timestamp" in embed:
        try:
            datetime.fromisoformat(str(embed["timestamp"]))
        except ValueError:
            problems.append(f"{where}.timestamp must be ISO 8601")
    count = len(embed.get("title") or "") + len(embed.get("description") or "")
    fields = embed.get("fields", [])
    if not isinstance(fields, list) or len(fields) > 25:
        problems.append(f"{where}.fields must be a list of at most 25")
        fields = []
    for i, item in enumerate(fields):
        if not isinstance(item, dict) or set(item) - {"name", "value", "inline"}:
            problems.append(f"{where}.fields[{i}] must be {{name, value, inline}}")
            continue
        problems += text_problems(item.get("name"), f"{where}.fields[{i}].name", 256)
        problems += text_problems(item.get("value"), f"{where}.fields[{i}].value", 1024)
        if not isinstance(item.get("inline", False), bool):
            problems.append(f"{where}.fields[{i}].inline must be a boolean")
        count += len(str(item.get("name", ""))) + len(str(item.get("value", "")))
    for part, key, limit in (("footer", "text", 2048), ("author", "name", 256)):
        if part in embed:
            value = embed[part].get(key) if isinstance(embed[part], dict) else None
            problems += text_problems(value, f"{where}.{part}.{key}", limit)
            count += len(value or "") if isinstance(value, str) else 0
    return problems, count


def webhook_problems(message: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    extra = set(message) - TOP_KEYS
    if extra:
        problems.append(f"unknown fields {sorted(extra)}")
    problems += text_problems(message.get("content"), "content", 2000, required=False)
    embeds = message.get("embeds", [])
    if not isinstance(embeds, list) or len(embeds) > 10:
        return [*problems, "embeds must be a list of at most 10"]
    if not message.get("content") and not embeds:
        problems.append("Cannot send an empty message")
    total = 0
    for i, embed in enumerate(embeds):
        found, count = embed_problems(embed, f"embeds[{i}]")
        problems += found
        total += count
    if total > 6000:
        problems.append(f"the embeds hold {total} characters, more than 6000")
    mentions = message.get("allowed_mentions")
    if mentions is not None:
        parse = mentions.get("parse") if isinstance(mentions, dict) else None
        if not isinstance(parse, list) or set(parse) - MENTIONS:
            problems.append("allowed_mentions.parse must list roles/users/everyone")
    return problems


@dataclass
class DiscordReceiver(Receiver):
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    def failure_response(self, failure: Failure) -> web.Response:
        if failure.status != 429:
            return web.json_response({"message": "failure", "code": 0}, status=failure.status)
        after = 1.0 if failure.retry_after is None else failure.retry_after
        headers = {
            "Retry-After": str(math.ceil(after)),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": f"{after:g}",
            "X-RateLimit-Scope": "shared",
        }
        body = {"message": "You are being rate limited.", "retry_after": after, "global": False}
        return web.json_response(body, status=429, headers=headers)

    async def answer(self, request: Received) -> web.Response:
        if request.path != WEBHOOK_PATH or request.method != "POST":
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        message, problems = json_body(request)
        if not problems:
            problems = webhook_problems(message)
        if problems:
            self.reject(request, problems)
            return web.json_response(
                {"code": 50035, "message": "Invalid Form Body", "errors": problems}, status=400
            )
        self.messages.append(message)
        return web.Response(status=204)
