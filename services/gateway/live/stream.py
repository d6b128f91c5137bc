"""In-process fan-out of read-model changes to live clients (server-sent events).

Publishing never waits: each client has a bounded queue, and a client whose queue is
full is dropped (its stream ends; browsers reconnect and reload). A slow browser can
therefore never hold back a projection.

A client that stops reading altogether leaves its response waiting on a full send
buffer, where the end of its queue is never read; the HTTP server cuts such a
connection once its writes have stalled for the write time-out (``http_limits``). What
one such client holds meanwhile is bounded: its queue (references to events shared by
all clients) and a small send buffer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson

log = logging.getLogger(__name__)

CLIENT_QUEUE_SIZE = 1024
# live clients are never idle, so the connection cap cannot make room by closing them:
# past this many a new one is refused, and /health and the API stay reachable
MAX_CLIENTS = 1000
KEEPALIVE_S = 15.0


@dataclass(frozen=True)
class LiveEvent:
    """What a live client is told: which resource changed, how, and its public view
    after the change (the shape the REST API answers for it; ``None`` once removed)."""

    resource: str
    id: str
    change: str
    stream: str
    seq: int
    view: dict[str, Any] | None

    def sse(self) -> bytes:
        body = orjson.dumps(
            {
                "resource": self.resource,
                "id": self.id,
                "change": self.change,
                "seq": self.seq,
                "view": self.view,
            }
        )
        return b"id: %s:%d\nevent: %s\ndata: %s\n\n" % (
            self.stream.encode(),
            self.seq,
            self.resource.encode(),
            body,
        )


class LiveSubscriber:
    """One client's queue; ``None`` in the queue means the stream is over."""

    def __init__(self, size: int):
        self.queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(size)
        self.dropped = False

    def end(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def next(self, within_s: float) -> LiveEvent | None:
        """The next event; raises TimeoutError when none came within ``within_s``."""
        return await asyncio.wait_for(self.queue.get(), within_s)


class LiveStream:
    def __init__(self, client_queue_size: int = CLIENT_QUEUE_SIZE, max_clients: int = MAX_CLIENTS):
        self.client_queue_size = client_queue_size
        self.max_clients = max_clients
        self.subscribers: set[LiveSubscriber] = set()
        self.closed = False

    @property
    def full(self) -> bool:
        return len(self.subscribers) >= self.max_clients

    def subscribe(self) -> LiveSubscriber:
        subscriber = LiveSubscriber(self.client_queue_size)
        if self.closed:
            subscriber.end()
        else:
            self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: LiveSubscriber) -> None:
        self.subscribers.discard(subscriber)

    def publish(self, item: LiveEvent) -> None:
        for subscriber in list(self.subscribers):
            try:
                subscriber.queue.put_nowait(item)
            except asyncio.QueueFull:
                subscriber.dropped = True
                self.subscribers.discard(subscriber)
                subscriber.end()
                log.warning(
                    "dropped a live client that could not keep up",
                    extra={"queue_size": self.client_queue_size, "seq": item.seq},
                )

    def close(self) -> None:
        """End every client's stream, so the HTTP server can shut down."""
        self.closed = True
        for subscriber in list(self.subscribers):
            subscriber.end()
        self.subscribers.clear()
