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

from tests.receivers.scripted import Invalid, ScriptedReceiver


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


class SentryReceiver(ScriptedReceiver):
    def __init__(self, public_key: str = "publickey", project: str = "42"):
        super().__init__()
        self.public_key = public_key
        self.project = project
        self.route("POST", "/api/{project}/envelope/", self._envelope)

    @property
    def dsn(self) -> str:
        return f"http://{self.public_key}@{self.host}:{self.port}/{self.project}"

    @property
    def envelopes(self) -> list[Envelope]:
        return list(self.received)

    def events(self) -> list[dict[str, Any]]:
        return [event for envelope in self.envelopes for event in envelope.events()]

    async def _envelope(self, request: web.Request) -> Envelope:
        project = request.match_info["project"]
        if project != self.project:
            raise Invalid(f"unknown project {project!r}")
        auth = request.headers.get("X-Sentry-Auth", "")
        fields = dict(
            part.strip().split("=", 1)
            for part in auth.removeprefix("Sentry ").split(",")
            if "=" in part
        )
        if fields.get("sentry_key") != self.public_key:
            raise Invalid("X-Sentry-Auth does not carry the project's public key")
        encoding = request.headers.get("Content-Encoding", "")
        if encoding not in ("", "gzip"):
            raise Invalid(f"unsupported Content-Encoding {encoding!r}")
        # aiohttp undoes the gzip encoding as it reads the body
        return parse_envelope(await request.read(), project)
