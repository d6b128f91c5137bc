"""Publishing events to the log, reading an aggregate back, and request/reply commands."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nats
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError

from shared.errors import (
    Conflict,
    InvalidInput,
    StreamFull,
    Unavailable,
    VigilError,
    error_from_dict,
)
from shared.events import Event, UndecodableEvent, decode_event
from shared.natsauth import CLI_USER, NatsCredentials, credentials_for
from shared.settings import Settings
from shared.streams import ensure_streams, stream_for_subject

log = logging.getLogger(__name__)

WRONG_LAST_SEQUENCE = 10071
STREAM_FULL = 10077  # a stream that keeps its history reached its byte limit
# how ``serve`` writes a reply's result: orjson's dump of {"result": ...}, byte for byte
RESULT_PREFIX = b'{"result":'


@dataclass(frozen=True)
class Recorded:
    """An event as stored: with its stream sequence."""

    event: Event
    seq: int
    subject: str


@asynccontextmanager
async def log_session(settings: Settings, purpose: str) -> AsyncIterator[EventBus]:
    """A short-lived connection to the log, streams declared: for rebuilds and tools."""
    if not settings.nats_url:
        raise ValueError(f"NATS_URL is required for {purpose}")
    nc = await connect(settings.nats_url, f"vigil-{purpose}", credentials_for(settings, CLI_USER))
    try:
        bus = EventBus(nc)
        await ensure_streams(bus.js, settings)
        yield bus
    finally:
        await nc.close()


async def connect(url: str, name: str, credentials: NatsCredentials | None = None) -> Client:
    """A reconnecting client; with ``credentials`` it logs in and gets its own inbox."""
    auth = credentials.connect_options() if credentials is not None else {}
    return await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        **auth,
    )


async def settle(nc: Client) -> None:
    """Return once the server has processed everything this client has sent so far.

    ``Client.flush`` alone is not enough: nats-py writes its PING straight to the
    socket while SUB commands may still wait in the client's buffer, so the PONG
    can come back before a new subscription exists on the server. Writing the
    buffer out first restores the order.
    """
    await nc._flush_pending(force_flush=True)
    await nc.flush()


class EventBus:
    def __init__(self, nc: Client):
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=10)

    async def publish(
        self,
        subject: str,
        event: Event,
        expected_last_subject_seq: int | None = None,
        timeout: float | None = None,
    ) -> int:
        """Append ``event``; returns its stream sequence. Same event id twice stores it once.

        With ``expected_last_subject_seq`` the append fails with Conflict unless the
        subject's last event is still the one the writer decided on.
        """
        headers = {"Nats-Msg-Id": event.id}
        if expected_last_subject_seq is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(expected_last_subject_seq)
        try:
            ack = await self.js.publish(subject, event.encode(), headers=headers, timeout=timeout)
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise Conflict(f"{subject} changed concurrently; reload and retry") from exc
            if exc.err_code == STREAM_FULL:
                raise StreamFull(stream_for_subject(subject).full_message()) from exc
            raise
        return int(ack.seq)

    async def read_subject(self, subject: str) -> list[Recorded]:
        """Every event stored under one subject (one aggregate), oldest first."""
        stream = stream_for_subject(subject).name
        recorded: list[Recorded] = []
        seq = 1
        while True:
            try:
                raw = await self.js.get_msg(
                    stream, seq=seq, subject=subject, next=True, direct=True
                )
            except NotFoundError:
                return recorded
            if raw.seq is None or raw.data is None:
                return recorded
            recorded.append(Recorded(decode_event(raw.data), raw.seq, subject))
            seq = raw.seq + 1

    async def replay(
        self,
        stream: str,
        filter_subject: str = ">",
        batch: int = 512,
        *,
        start_time: datetime | None = None,
        end_seq: int | None = None,
    ) -> AsyncIterator[Recorded]:
        """Everything in ``stream`` (optionally filtered) up to the end at the time of the call,
        or only what was stored from ``start_time`` on and up to sequence ``end_seq``."""
        info = await self.js.stream_info(stream)
        last = info.state.last_seq if end_seq is None else min(end_seq, info.state.last_seq)
        if info.state.messages == 0 or last <= 0:
            return
        if filter_subject != ">" and start_time is None:
            # nothing matching: one direct read says so, where a fetch would wait out its
            # timeout for a message that never comes
            try:
                first = await self.js.get_msg(
                    stream, seq=1, subject=filter_subject, next=True, direct=True
                )
            except NotFoundError:
                return
            if first.seq is None or first.seq > last:
                return
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL if start_time is None else DeliverPolicy.BY_START_TIME,
            opt_start_time=start_time,
            ack_policy=AckPolicy.NONE,
            filter_subject=None if filter_subject == ">" else filter_subject,
            inactive_threshold=30.0,
            mem_storage=True,
        )
        sub = await self.js.pull_subscribe(
            filter_subject if filter_subject != ">" else "", stream=stream, config=config
        )
        try:
            while True:
                try:
                    msgs = await sub.fetch(batch, timeout=1.0)
                except TimeoutError:  # nats' own, or asyncio's when the deadline ran out
                    return
                for msg in msgs:
                    meta = msg.metadata
                    if meta.sequence.stream > last:
                        return
                    try:
                        event = decode_event(msg.data)
                    except UndecodableEvent as exc:
                        # live consumers dead-letter it; a replay skips it the same way
                        log.warning(
                            "skipping undecodable message in replay",
                            extra={
                                "stream": stream,
                                "stream_seq": meta.sequence.stream,
                                "error": str(exc),
                            },
                        )
                    else:
                        yield Recorded(event, meta.sequence.stream, msg.subject)
                    if meta.sequence.stream >= last or meta.num_pending == 0:
                        return
        finally:
            await sub.unsubscribe()

    # --- request/reply -----------------------------------------------------

    async def request(self, subject: str, body: dict[str, Any], timeout: float = 5.0) -> Any:
        """Send a command or query; raises the domain error the owner replied with."""
        try:
            msg = await self.nc.request(subject, orjson.dumps(body), timeout=timeout)
        except (TimeoutError, NoRespondersError, NatsTimeout) as exc:
            raise Unavailable(f"no service answered {subject}") from exc
        reply = orjson.loads(msg.data)
        if "error" in reply:
            raise error_from_dict(reply["error"])
        return reply.get("result")

    async def request_json(self, subject: str, body: dict[str, Any], timeout: float = 5.0) -> bytes:
        """Like ``request``, but the result's JSON as the owner wrote it, undecoded: for
        large answers passed on as they are (an HTTP body)."""
        try:
            msg = await self.nc.request(subject, orjson.dumps(body), timeout=timeout)
        except (TimeoutError, NoRespondersError, NatsTimeout) as exc:
            raise Unavailable(f"no service answered {subject}") from exc
        if msg.data.startswith(RESULT_PREFIX) and msg.data.endswith(b"}"):
            return bytes(msg.data[len(RESULT_PREFIX) : -1])
        reply = orjson.loads(msg.data)
        if "error" in reply:
            raise error_from_dict(reply["error"])
        return orjson.dumps(reply.get("result"))

    async def serve(
        self,
        subject: str,
        handler: Callable[[dict[str, Any]], Awaitable[Any]],
        queue: str = "",
    ) -> Subscription:
        """Answer requests on ``subject``; domain errors travel back as ``{"error": ...}``."""

        async def respond(msg: Msg) -> None:
            try:
                body = orjson.loads(msg.data) if msg.data else {}
                if not isinstance(body, dict):
                    raise InvalidInput("request body must be a JSON object")
                reply: dict[str, Any] = {"result": await handler(body)}
            except VigilError as exc:
                reply = {"error": exc.to_dict()}
            except orjson.JSONDecodeError as exc:
                reply = {"error": InvalidInput(f"request is not JSON: {exc}").to_dict()}
            except Exception as exc:
                log.exception("request handler failed", extra={"subject": subject})
                reply = {"error": VigilError(f"internal error: {exc}").to_dict()}
            if msg.reply:
                await msg.respond(orjson.dumps(reply, default=str))

        return await self.nc.subscribe(subject, queue=queue, cb=respond)
