"""A Slack stand-in: an incoming webhook and the Web API's chat.postMessage/chat.update.

Checks Block Kit as Slack documents it (https://api.slack.com/reference/block-kit):
block types and their keys, text objects, 50 blocks a message, the length limits; and
answers like Slack: the incoming webhook with ``ok`` or an HTTP 400 naming the error, the
Web API with HTTP 200 and ``{"ok": false, "error": ...}`` (``invalid_auth``,
``channel_not_found``, ``message_not_found``, ``invalid_blocks``...), HTTP 429 with
Retry-After when rate limited. Keeps each channel's messages so a test sees an update
land on the message it was meant for and replies land in its thread.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.receivers import Failure, Received, Receiver, json_body, text_problems, url_problems

WEBHOOK_PATH = "/services/T0VIGIL/B0VIGIL/Xq2bWs0M3c7kA1"
TEST_TOKEN = "xoxb-1111-2222-vigiltesttoken"
TEST_CHANNEL = "C0VIGIL01"

MAX_BLOCKS = 50
MAX_MESSAGE_TEXT = 40_000
COLOR = re.compile(r"^(#?[0-9A-Fa-f]{6}|good|warning|danger)$")
BLOCK_KEYS: dict[str, set[str]] = {
    "header": {"type", "block_id", "text"},
    "section": {"type", "block_id", "text", "fields", "accessory", "expand"},
    "context": {"type", "block_id", "elements"},
    "actions": {"type", "block_id", "elements"},
    "divider": {"type", "block_id"},
}


def text_object_problems(obj: Any, where: str, limit: int, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where} must be a text object"]
    kind = obj.get("type")
    allowed = {"plain_text"} if plain_only else {"plain_text", "mrkdwn"}
    if kind not in allowed:
        return [f"{where}.type must be one of {sorted(allowed)}, not {kind!r}"]
    extra = set(obj) - {"type", "text", "emoji" if kind == "plain_text" else "verbatim"}
    problems = [f"{where} has unknown keys {sorted(extra)}"] if extra else []
    return problems + text_problems(obj.get("text"), f"{where}.text", limit)


def button_problems(element: Any, where: str) -> list[str]:
    if not isinstance(element, dict) or element.get("type") != "button":
        return [f"{where} must be a button"]
    extra = set(element) - {
        "type",
        "text",
        "action_id",
        "url",
        "value",
        "style",
        "accessibility_label",
    }
    problems = [f"{where} has unknown keys {sorted(extra)}"] if extra else []
    problems += text_object_problems(element.get("text"), f"{where}.text", 75, plain_only=True)
    if "url" in element:
        problems += url_problems(element["url"], f"{where}.url", 3000)
    if "action_id" in element:
        problems += text_problems(element["action_id"], f"{where}.action_id", 255)
    if element.get("style") not in (None, "primary", "danger"):
        problems.append(f"{where}.style must be primary or danger")
    return problems


def block_problems(block: Any, where: str) -> list[str]:
    if not isinstance(block, dict):
        return [f"{where} must be an object"]
    kind = block.get("type")
    if kind not in BLOCK_KEYS:
        return [f"{where}.type {kind!r} is not a block type this message may use"]
    extra = set(block) - BLOCK_KEYS[kind]
    problems = [f"{where} has unknown keys {sorted(extra)}"] if extra else []
    if "block_id" in block:
        problems += text_problems(block["block_id"], f"{where}.block_id", 255)
    if kind == "header":
        problems += text_object_problems(block.get("text"), f"{where}.text", 150, plain_only=True)
    elif kind == "section":
        if "text" not in block and "fields" not in block:
            problems.append(f"{where} needs text or fields")
        if "text" in block:
            problems += text_object_problems(block["text"], f"{where}.text", 3000)
        if "fields" in block:
            fields = block["fields"]
            if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                problems.append(f"{where}.fields must be a list of 1 to 10 text objects")
            else:
                for i, item in enumerate(fields):
                    problems += text_object_problems(item, f"{where}.fields[{i}]", 2000)
    elif kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
            problems.append(f"{where}.elements must be a list of 1 to 10 elements")
        else:
            for i, item in enumerate(elements):
                problems += text_object_problems(item, f"{where}.elements[{i}]", 3000)
    elif kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
            problems.append(f"{where}.elements must be a list of 1 to 25 elements")
        else:
            for i, item in enumerate(elements):
                problems += button_problems(item, f"{where}.elements[{i}]")
    return problems


def blocks_problems(blocks: Any, where: str) -> list[str]:
    if not isinstance(blocks, list):
        return [f"{where} must be a list"]
    if len(blocks) > MAX_BLOCKS:
        return [f"{where} has {len(blocks)} blocks, more than {MAX_BLOCKS}"]
    problems: list[str] = []
    ids = [b.get("block_id") for b in blocks if isinstance(b, dict) and "block_id" in b]
    if len(ids) != len(set(ids)):
        problems.append(f"{where} repeats a block_id")
    for i, block in enumerate(blocks):
        problems += block_problems(block, f"{where}[{i}]")
    return problems


def message_problems(message: dict[str, Any]) -> list[str]:
    """What Slack would refuse in a message body (webhook or chat.* alike)."""
    problems: list[str] = []
    if not any(message.get(k) for k in ("text", "blocks", "attachments")):
        problems.append("no_text: a message needs text, blocks or attachments")
    if "text" in message:
        problems += text_problems(message["text"], "text", MAX_MESSAGE_TEXT, required=False)
    if "blocks" in message:
        problems += blocks_problems(message["blocks"], "blocks")
    total = len(message.get("blocks") or [])
    attachments = message.get("attachments", [])
    if not isinstance(attachments, list) or len(attachments) > 100:
        return [*problems, "attachments must be a list of at most 100"]
    for i, attachment in enumerate(attachments):
        where = f"attachments[{i}]"
        if not isinstance(attachment, dict):
            problems.append(f"{where} must be an object")
            continue
        if "color" in attachment and not COLOR.match(str(attachment["color"])):
            problems.append(f"{where}.color must be a hex colour or good/warning/danger")
        if "blocks" in attachment:
            problems += blocks_problems(attachment["blocks"], f"{where}.blocks")
            total += len(attachment["blocks"]) if isinstance(attachment["blocks"], list) else 0
        elif not any(attachment.get(k) for k in ("text", "fallback", "fields")):
            problems.append(f"{where} has no content")
    if total > MAX_BLOCKS:
        problems.append(f"the message has {total} blocks, more than {MAX_BLOCKS}")
    return problems


@dataclass
class SlackMessage:
    channel: str
    ts: str
    body: dict[str, Any]
    thread_ts: str | None = None
    versions: list[dict[str, Any]] = field(default_factory=list)  # earlier bodies, oldest first


@dataclass
class SlackReceiver(Receiver):
    """``url`` is the incoming webhook, ``api_url`` the Web API base for a bot token.

    Known conversations: ``TEST_CHANNEL`` and any user id (``U...``), whose DM answers
    as ``D`` + the rest of the id, as Slack does.
    """

    token: str = TEST_TOKEN
    channels: set[str] = field(default_factory=lambda: {TEST_CHANNEL})
    webhook_messages: list[dict[str, Any]] = field(default_factory=list)
    messages: list[SlackMessage] = field(default_factory=list)
    _clock: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    @property
    def api_url(self) -> str:
        return self.base_url + "/api"

    def message(self, channel: str, ts: str) -> SlackMessage:
        [found] = [m for m in self.messages if (m.channel, m.ts) == (channel, ts)]
        return found

    def thread(self, channel: str, ts: str) -> list[SlackMessage]:
        """The replies posted under the message ``ts``."""
        return [m for m in self.messages if m.channel == channel and m.thread_ts == ts]

    @property
    def top_level(self) -> list[SlackMessage]:
        return [m for m in self.messages if m.thread_ts is None]

    # --- answers -----------------------------------------------------------------

    def failure_response(self, failure: Failure) -> web.Response:
        headers = {"Retry-After": f"{failure.retry_after:g}"} if failure.retry_after else {}
        if failure.error is not None:
            return web.json_response(
                {"ok": False, "error": failure.error}, status=failure.status, headers=headers
            )
        return web.Response(status=failure.status, headers=headers, text="rollup_error")

    async def answer(self, request: Received) -> web.Response:
        if request.method != "POST":
            return web.Response(status=405)
        if request.path == WEBHOOK_PATH:
            return self._webhook(request)
        if request.path == "/api/chat.postMessage":
            return self._api(request, self._post)
        if request.path == "/api/chat.update":
            return self._api(request, self._update)
        return web.Response(status=404, text="no_service")

    def _webhook(self, request: Received) -> web.Response:
        body, problems = json_body(request)
        if not problems:
            problems = message_problems(body)
        if problems:
            self.reject(request, problems)
            return web.Response(status=400, text="invalid_blocks")
        self.webhook_messages.append(body)
        return web.Response(text="ok")

    def _api(self, request: Received, method: Any) -> web.Response:
        def error(code: str, problems: list[str] | None = None) -> web.Response:
            self.reject(request, problems or [code])
            return web.json_response({"ok": False, "error": code})

        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return error("not_authed" if "Authorization" not in request.headers else "invalid_auth")
        body, problems = json_body(request)
        if problems:
            return error("invalid_json", problems)
        channel = body.get("channel")
        if not isinstance(channel, str) or not channel:
            return error("channel_not_found", ["channel is required"])
        if channel.startswith("U"):
            channel = "D" + channel[1:]
        elif channel not in self.channels:
            return error("channel_not_found")
        problems = message_problems(body)
        if problems:
            code = "no_text" if problems[0].startswith("no_text") else "invalid_blocks"
            return error(code, problems)
        result: web.Response = method(request, channel, body, error)
        return result

    def _post(self, request: Received, channel: str, body: dict[str, Any], error: Any) -> Any:
        thread_ts = body.get("thread_ts")
        if thread_ts is not None and not any(
            m.channel == channel and m.ts == thread_ts for m in self.messages
        ):
            return error("thread_not_found")
        ts = f"1700000000.{next(self._clock):06d}"
        self.messages.append(SlackMessage(channel, ts, body, thread_ts=thread_ts))
        return web.json_response({"ok": True, "channel": channel, "ts": ts, "message": body})

    def _update(self, request: Received, channel: str, body: dict[str, Any], error: Any) -> Any:
        ts = body.get("ts")
        if not isinstance(ts, str):
            return error("invalid_arguments", ["ts is required"])
        found = [m for m in self.messages if (m.channel, m.ts) == (channel, ts)]
        if not found:
            return error("message_not_found")
        message = found[0]
        message.versions.append(message.body)
        message.body = body
        return web.json_response(
            {"ok": True, "channel": channel, "ts": ts, "text": body.get("text")}
        )


def dump(message: dict[str, Any]) -> str:
    """The whole message as text, to look for what it should (not) contain."""
    return orjson.dumps(message).decode()
