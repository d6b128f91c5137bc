"""Live tail of the LOGS stream: one ordered consumer per gateway, fanned out to clients.

The consumer exists only while someone tails (no durable, nothing left on the server),
starts at the newest message, and decodes each batch once; every client filters the
lines itself (``shared/logmatch.py``, the store's semantics) and queues at most
``queue_bytes`` of encoded lines (one batch more when its queue is empty). A client that
falls further behind is dropped: its queue is emptied, it is sent a ``dropped`` event
and its stream ends, so a slow reader never holds more than its queue, and never holds
the others back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import orjson
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy

from shared.bus import EventBus
from shared.errors import Unavailable
from shared.logmatch import LineFilter
from shared.streams import LOGS
from shared.subjects import LOG_ENTRIES

log = logging.getLogger(__name__)

MAX_TAIL_CLIENTS = 100
TAIL_QUEUE_BYTES = 8 * 1024 * 1024
# what the NATS client may buffer for the one consumer before it counts as slow
PENDING_BYTES = 64 * 1024 * 1024


def line_event(entry: dict[str, Any], received_at: float, seq: int, index: int) -> bytes:
    """One line as a server-sent event, in the shape a search answers with."""
    stamp = entry.get("timestamp")
    body = orjson.dumps(
        {
            "timestamp": stamp if stamp is not None else received_at,
            "level": entry.get("level", "info"),
            "message": entry.get("message", ""),
            "service": entry.get("service", ""),
            "labels": entry.get("labels") or {},
            "fields": entry.get("fields") or {},
            "trace_id": entry.get("trace_id"),
            "span_id": entry.get("span_id"),
        }
    )
    return b"id: %d:%d\nevent: log\ndata: %s\n\n" % (seq, index, body)


def dropped_event(max_bytes: int) -> bytes:
    body = orjson.dumps(
        {
            "reason": f"the client fell more than {max_bytes} bytes of lines behind; "
            "reconnect to tail again, and search for what was missed"
        }
    )
    return b"event: dropped\ndata: %s\n\n" % body


@dataclass(eq=False)
class TailClient:
    """One client's filter and queue of batches (each the lines of one LogsIngested that
    it admits, references to encodings shared by every client); ``None`` ends it.

    The queue is bounded in bytes, but always takes a batch when empty, so a client that
    keeps up is never dropped for one large batch.
    """

    filter: LineFilter
    max_bytes: int
    queue: asyncio.Queue[list[bytes] | None] = field(init=False)
    queued_bytes: int = 0
    dropped: bool = False

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue()

    def offer(self, lines: list[bytes]) -> bool:
        """Queue a batch's lines; False (and the client dropped) when it is too far behind."""
        size = sum(len(line) for line in lines)
        if self.queued_bytes and self.queued_bytes + size > self.max_bytes:
            self.end(dropped_event(self.max_bytes))
            self.dropped = True
            return False
        self.queued_bytes += size
        self.queue.put_nowait(lines)
        return True

    def end(self, notice: bytes | None = None) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queued_bytes = 0
        if notice is not None:
            self.queue.put_nowait([notice])
        self.queue.put_nowait(None)

    async def next(self, within_s: float) -> bytes | None:
        """The next batch's lines as one chunk; raises TimeoutError when none came."""
        lines = await asyncio.wait_for(self.queue.get(), within_s)
        if lines is None:
            return None
        chunk = b"".join(lines)
        self.queued_bytes = max(0, self.queued_bytes - len(chunk))
        return chunk


class LogTails:
    def __init__(self, max_clients: int = MAX_TAIL_CLIENTS, queue_bytes: int = TAIL_QUEUE_BYTES):
        self.max_clients = max_clients
        self.queue_bytes = queue_bytes
        self.clients: set[TailClient] = set()
        self.subscription: Subscription | None = None
        self.lock = asyncio.Lock()
        self.closed = False
        self.dropped = 0

    @property
    def full(self) -> bool:
        return len(self.clients) >= self.max_clients

    async def join(self, bus: EventBus, line_filter: LineFilter) -> TailClient:
        """A new client, the stream's consumer started if it is the first one."""
        client = TailClient(line_filter, self.queue_bytes)
        if self.closed:
            client.end()
            return client
        async with self.lock:
            if self.subscription is None:
                try:
                    self.subscription = await bus.js.subscribe(
                        f"{LOG_ENTRIES}.>",
                        stream=LOGS.name,
                        ordered_consumer=True,
                        deliver_policy=DeliverPolicy.NEW,
                        cb=self._deliver,
                        pending_bytes_limit=PENDING_BYTES,
                    )
                except (TimeoutError, nats.errors.Error) as exc:
                    raise Unavailable(
                        f"the log stream cannot be read: {exc or 'no answer'}; retry later"
                    ) from exc
            self.clients.add(client)
        return client

    async def leave(self, client: TailClient) -> None:
        """Forget a client; the consumer goes with the last one."""
        async with self.lock:
            self.clients.discard(client)
            if not self.clients and self.subscription is not None:
                subscription, self.subscription = self.subscription, None
                try:
                    await subscription.unsubscribe()
                except Exception as exc:  # the connection may be gone already
                    log.warning("could not stop the log tail consumer", extra={"error": str(exc)})

    async def _deliver(self, msg: Msg) -> None:
        if not self.clients:
            return
        try:
            raw = orjson.loads(msg.data)
            entries = raw["entries"]
            received_at = float(raw.get("received_at") or 0.0)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return  # not a log batch: the store dead-letters it, the tail skips it
        seq = msg.metadata.sequence.stream
        clients = [c for c in self.clients if not c.dropped]
        admitted: dict[TailClient, list[bytes]] = {c: [] for c in clients}
        for index, entry in enumerate(entries):
            encoded: bytes | None = None
            for client in clients:
                if client.filter.admits(entry):
                    if encoded is None:
                        encoded = line_event(entry, received_at, seq, index)
                    admitted[client].append(encoded)
        for client, lines in admitted.items():
            if lines and not client.offer(lines):
                self.dropped += 1
                self.clients.discard(client)
                log.warning(
                    "dropped a log tail client that could not keep up",
                    extra={"queue_bytes": self.queue_bytes, "seq": seq},
                )

    def close(self) -> None:
        """End every client's stream, so the HTTP server can shut down."""
        self.closed = True
        for client in list(self.clients):
            client.end()
