"""A Microsoft Teams incoming-webhook stand-in.

Checks the documented message with an Adaptive Card attachment
(https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using):
``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": {"type": "AdaptiveCard", "version":
..., "body": [...], "actions": [...]}}]}`` with the element and action types Teams
renders, their required properties and enumerated values, and Teams' 28 KB message size.
Answers 200 ``1`` like the connector, 400 with a reason otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.receivers import Failure, Received, Receiver, json_body, text_problems, url_problems

WEBHOOK_PATH = "/webhookb2/vigil-test@tenant/IncomingWebhook/0123abcd/guid"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_MESSAGE_BYTES = 28 * 1024
VERSIONS = ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5")
ENUMS: dict[str, tuple[str, ...]] = {
    "size": ("default", "small", "medium", "large", "extraLarge"),
    "weight": ("default", "lighter", "bolder"),
    "color": ("default", "dark", "light", "accent", "good", "warning", "attention"),
    "spacing": ("none", "small", "default", "medium", "large", "extraLarge", "padding"),
    "style": ("default", "emphasis", "good", "attention", "warning", "accent"),
}
COMMON = {"type", "id", "spacing", "separator", "isVisible"}
ELEMENT_KEYS: dict[str, set[str]] = {
    "TextBlock": COMMON | {"text", "size", "weight", "color", "wrap", "isSubtle", "maxLines"},
    "FactSet": COMMON | {"facts"},
    "Container": COMMON | {"items", "style", "bleed"},
}


def element_problems(element: Any, where: str) -> list[str]:
    if not isinstance(element, dict):
        return [f"{where} must be an object"]
    kind = element.get("type")
    if kind not in ELEMENT_KEYS:
        return [f"{where}.type {kind!r} is not an element this card may use"]
    problems: list[str] = []
    extra = set(element) - ELEMENT_KEYS[kind]
    if extra:
        problems.append(f"{where} has unknown properties {sorted(extra)}")
    for name, allowed in ENUMS.items():
        if name in element and element[name] not in allowed:
            problems.append(f"{where}.{name} must be one of {list(allowed)}")
    if kind == "TextBlock":
        problems += text_problems(element.get("text"), f"{where}.text", 20_000)
    elif kind == "FactSet":
        facts = element.get("facts")
        if not isinstance(facts, list) or not facts:
            problems.append(f"{where}.facts must be a non-empty list")
        else:
            for i, fact in enumerate(facts):
                if not isinstance(fact, dict) or set(fact) != {"title", "value"}:
                    problems.append(f"{where}.facts[{i}] must be {{title, value}}")
                    continue
                problems += text_problems(fact["title"], f"{where}.facts[{i}].title", 1000)
                problems += text_problems(fact["value"], f"{where}.facts[{i}].value", 5000)
    elif kind == "Container":
        items = element.get("items")
        if not isinstance(items, list) or not items:
            problems.append(f"{where}.items must be a non-empty list")
        else:
            for i, item in enumerate(items):
                problems += element_problems(item, f"{where}.items[{i}]")
    return problems


def action_problems(action: Any, where: str) -> list[str]:
    if not isinstance(action, dict) or action.get("type") != "Action.OpenUrl":
        return [f"{where} must be an Action.OpenUrl"]
    extra = set(action) - {"type", "title", "url", "id", "style", "tooltip"}
    problems = [f"{where} has unknown properties {sorted(extra)}"] if extra else []
    problems += text_problems(action.get("title"), f"{where}.title", 200)
    return problems + url_problems(action.get("url"), f"{where}.url")


def card_message_problems(message: dict[str, Any], size: int) -> list[str]:
    problems: list[str] = []
    if size > MAX_MESSAGE_BYTES:
        problems.append(f"the message is {size} bytes, more than {MAX_MESSAGE_BYTES}")
    if message.get("type") != "message":
        problems.append('type must be "message"')
    attachments = message.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return [*problems, "attachments must hold exactly one card"]
    attachment = attachments[0]
    if not isinstance(attachment, dict) or attachment.get("contentType") != CARD_TYPE:
        return [*problems, f"attachments[0].contentType must be {CARD_TYPE}"]
    card = attachment.get("content")
    if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
        return [*problems, 'attachments[0].content.type must be "AdaptiveCard"']
    if card.get("version") not in VERSIONS:
        problems.append(f"card version must be one of {list(VERSIONS)}")
    extra = set(card) - {"$schema", "type", "version", "body", "actions", "msteams", "fallbackText"}
    if extra:
        problems.append(f"the card has unknown properties {sorted(extra)}")
    body = card.get("body")
    if not isinstance(body, list) or not body:
        problems.append("the card body must be a non-empty list")
    else:
        for i, element in enumerate(body):
            problems += element_problems(element, f"body[{i}]")
    for i, action in enumerate(card.get("actions") or []):
        problems += action_problems(action, f"actions[{i}]")
    return problems


@dataclass
class TeamsReceiver(Receiver):
    cards: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    def failure_response(self, failure: Failure) -> web.Response:
        if failure.error is not None:  # the old connector's way: an error as text in a 200
            return web.Response(status=failure.status, text=failure.error)
        return super().failure_response(failure)

    async def answer(self, request: Received) -> web.Response:
        if request.path != WEBHOOK_PATH or request.method != "POST":
            return web.Response(status=404, text="Not Found")
        message, problems = json_body(request)
        if not problems:
            problems = card_message_problems(message, len(request.body))
        if problems:
            self.reject(request, problems)
            return web.Response(
                status=400, text="Bad payload received by generic incoming webhook."
            )
        self.cards.append(message["attachments"][0]["content"])
        return web.Response(text="1")
