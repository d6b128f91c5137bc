"""A Sentry-like ingest endpoint: ``POST /api/<project>/envelope/`` with the documented
envelope format (https://develop.sentry.dev/sdk/data-model/envelopes/).

An envelope is newline-separated: a JSON header, then items, each a JSON item header
followed by its payload -- ``length`` bytes when the header gives a length, else up to
the next newline. The body may be gzip-compressed (``Content-Encoding: gzip``). The
SDK authenticates with ``X-Sentry-Auth: Sentry sentry_key=<public key>, ...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.receivers import Received, Receiver


class Invalid(Exception):
    """The envelope's framing is broken; the message says how."""


@dataclass(frozen=True)
class Item:
    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))

    def json(self) -> Any:
        return orjson.loads(self.payload)


@dataclass(frozen=True)
class Envelope:
    project: str
    headers: dict[str, Any]
    items: list[Item]

    def events(self) -> list[dict[str, Any]]:
        return [item.json() for item in self.items if item.type == "event"]


def parse_envelope(body: bytes, project: str = "") -> Envelope:
    """The envelope's header and items; ``Invalid`` when the framing is broken."""
    try:
        header_line, _, rest = body.partition(b"\n")
        headers = orjson.loads(header_line)
        items: list[Item] = []
        while rest.strip():
            item_line, _, rest = rest.partition(b"\n")
            item_headers = orjson.loads(item_line)
            if not isinstance(item_headers, dict) or "type" not in item_headers:
                raise Invalid("an item header without a type")
            length = item_headers.get("length")
            if length is None:
                payload, _, rest = rest.partition(b"\n")
            else:
                if len(rest) < length:
                    raise Invalid(f"item declares {length} bytes, {len(rest)} follow")
                payload, rest = rest[:length], rest[length:]
                rest = rest.removeprefix(b"\n")
            items.append(Item(item_headers, payload))
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"not an envelope: {exc}") from exc
    if not isinstance(headers, dict):
        raise Invalid("the envelope header is not an object")
    return Envelope(project, headers, items)


@dataclass
class SentryReceiver(Receiver):
    public_key: str = "publickey"
    project: str = "42"

    @property
    def url(self) -> str:
        return self.dsn

    @property
    def dsn(self) -> str:
        return f"http://{self.public_key}@{self.host}:{self.port}/{self.project}"

    @property
    def envelopes(self) -> list[Envelope]:
        # aiohttp has undone a gzip Content-Encoding as it read the body
        return [parse_envelope(r.body, self.project) for r in self.accepted]

    def events(self) -> list[dict[str, Any]]:
        return [event for envelope in self.envelopes for event in envelope.events()]

    async def answer(self, request: Received) -> web.Response:
        if request.method != "POST" or request.path != f"/api/{self.project}/envelope/":
            self.reject(request, [f"not the project's envelope endpoint: {request.path}"])
            return web.json_response({"detail": "not found"}, status=404)
        problems = []
        auth = request.headers.get("X-Sentry-Auth", "")
        fields = dict(
            part.strip().split("=", 1)
            for part in auth.removeprefix("Sentry ").split(",")
            if "=" in part
        )
        if fields.get("sentry_key") != self.public_key:
            problems.append("X-Sentry-Auth does not carry the project's public key")
        if request.headers.get("Content-Encoding", "") not in ("", "gzip"):
            problems.append("unsupported Content-Encoding")
        if not problems:
            try:
                parse_envelope(request.body, self.project)
            except Invalid as exc:
                problems.append(str(exc))
        if problems:
            self.reject(request, problems)
            return web.json_response({"detail": problems}, status=400)
        return web.json_response({"id": request.headers.get("X-Request-Id", "")})
