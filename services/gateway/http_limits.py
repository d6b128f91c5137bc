"""Bounds on the gateway's HTTP connections that uvicorn does not enforce by itself.

- A request's headers must arrive within ``header_timeout_s`` of its first byte (of the
  connection, for the first request) and its body within ``body_timeout_s`` of the
  headers, so a client that trickles bytes (slowloris) cannot hold a connection.
- A response whose client stops reading is cut after ``write_timeout_s``: its buffer
  cannot grow, and a live stream nobody reads does not stay open. Streams (paths named
  in ``streams``) get small send buffers, so that a client which stops reading is seen
  to stall after a few hundred kilobytes, not after the megabytes the kernel's
  autotuning would otherwise queue for it.
- At most ``max_connections`` are open, fewer than the open-file limit allows. A new
  connection over the cap closes the one idle longest (no request under way), so a
  flood of idle sockets cannot lock ``/health`` out or make ``accept()`` fail; only when
  every connection is busy is the newcomer refused with a 503.

Timers are armed only while a request is partly received or a write is stalled; a
request that arrives whole in one read, as most do, costs none.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from shared.settings import Settings

log = logging.getLogger(__name__)

FDS_BESIDE_HTTP = 128  # NATS, the database, logs, the listening socket
MAX_BACKLOG = 512
STREAM_SEND_BUFFER = 128 * 1024  # the kernel's, per live stream (it doubles the figure)
STREAM_WRITE_HIGH_WATER = 64 * 1024  # ours, above which a stream's writes wait
RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close sends a reset
REPORT_EVERY_S = 10.0


def _problem_response(status: int, detail: str) -> bytes:
    """A whole response written before any app runs, in the API's one error body."""
    title = HTTPStatus(status).phrase
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/problem+json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s"
    ) % (status, title.encode(), len(body), body)


REFUSED = _problem_response(503, "too many open connections")
TIMED_OUT = _problem_response(408, "the request body came too slowly")


def listen_backlog(file_limit: int) -> int:
    """Also the most connections one loop turn accepts before any is looked at."""
    return max(16, min(MAX_BACKLOG, file_limit // 32))


def connection_cap(file_limit: int, backlog: int) -> int:
    """Connections to keep at most: the file limit less room for a few turns' accept
    bursts (each up to ``backlog``) and for everything else the process opens."""
    return max(16, file_limit - 4 * backlog - FDS_BESIDE_HTTP)


@dataclass(frozen=True)
class HttpLimits:
    header_timeout_s: float
    body_timeout_s: float
    keepalive_timeout_s: float
    write_timeout_s: float
    max_connections: int
    backlog: int

    @classmethod
    def of(cls, settings: Settings, file_limit: int) -> HttpLimits:
        backlog = listen_backlog(file_limit)
        cap = connection_cap(file_limit, backlog)
        if settings.http_max_connections:
            cap = min(cap, settings.http_max_connections)
        return cls(
            header_timeout_s=settings.http_header_timeout_s,
            body_timeout_s=settings.http_body_timeout_s,
            keepalive_timeout_s=settings.http_keepalive_timeout_s,
            write_timeout_s=settings.http_write_timeout_s,
            max_connections=cap,
            backlog=backlog,
        )


class ConnectionTable:
    """The open connections, and the idle ones in the order they became idle."""

    def __init__(self, cap: int):
        self.cap = cap
        self.open: set[BoundedHttpProtocol] = set()
        self.idle: OrderedDict[BoundedHttpProtocol, None] = OrderedDict()
        self.evicted = 0
        self.refused = 0
        self._reported = (0, 0)
        self._reported_at = 0.0

    def admit(self, conn: BoundedHttpProtocol) -> bool:
        """Count a new connection; over the cap, close the longest idle one to make room.
        False when every other connection is busy: the newcomer cannot stay."""
        if len(self.open) >= self.cap:
            if not self.idle:
                self.refused += 1
                self._report()
                return False
            oldest, _ = self.idle.popitem(last=False)
            self.open.discard(oldest)
            oldest.evict()
            self.evicted += 1
            self._report()
        self.open.add(conn)
        self.idle[conn] = None
        return True

    def became_idle(self, conn: BoundedHttpProtocol) -> None:
        if conn in self.open:
            self.idle[conn] = None
            self.idle.move_to_end(conn)

    def became_busy(self, conn: BoundedHttpProtocol) -> None:
        self.idle.pop(conn, None)

    def closed(self, conn: BoundedHttpProtocol) -> None:
        self.open.discard(conn)
        self.idle.pop(conn, None)

    def _report(self) -> None:
        """One warning per interval, not one per connection in a flood."""
        now = time.monotonic()
        if now - self._reported_at < REPORT_EVERY_S:
            return
        evicted, refused = self.evicted - self._reported[0], self.refused - self._reported[1]
        self._reported, self._reported_at = (self.evicted, self.refused), now
        log.warning(
            "at the HTTP connection cap: closed idle connections to make room",
            extra={"cap": self.cap, "closed_idle": evicted, "refused": refused},
        )


class BoundedConfig(uvicorn.Config):
    """uvicorn's config, carrying the limits, the table its connections share and the
    paths of long-lived streams."""

    def __init__(
        self, app: Any, limits: HttpLimits, streams: frozenset[str] = frozenset(), **kwargs: Any
    ):
        super().__init__(
            app,
            http=BoundedHttpProtocol,
            ws="none",
            backlog=limits.backlog,
            timeout_keep_alive=limits.keepalive_timeout_s,  # type: ignore[arg-type]
            **kwargs,
        )
        self.limits = limits
        self.streams = streams
        self.connections = ConnectionTable(limits.max_connections)


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with request time-outs, a write stall limit and a
    place in the connection table."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ):
        super().__init__(config, server_state, app_state, _loop)
        bounded = cast(BoundedConfig, config)
        self.limits = bounded.limits
        self.streams = bounded.streams
        self.table = bounded.connections
        self.request_timer: asyncio.TimerHandle | None = None
        self.write_timer: asyncio.TimerHandle | None = None
        self.headers_pending = False  # a request has begun; its headers are incomplete
        self.body_pending = False  # its headers are complete; its body is not

    # --- connection -------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.table.admit(self):
            transport.write(REFUSED)
            transport.close()
            return
        self._arm_request_timer(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        self.table.closed(self)
        super().connection_lost(exc)

    def evict(self) -> None:
        """Closed to make room: idle, so nothing is lost."""
        self._cancel_timers()
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.request_timer is not None or self.parser is None or self.transport.is_closing():
            return
        if self.body_pending:
            self._arm_request_timer(self.limits.body_timeout_s)
        elif self.headers_pending or self._idle():
            # part of a request, or bytes that began none (blank lines): either way the
            # keep-alive timer is off, so the next request's headers are now due
            self._arm_request_timer(self.limits.header_timeout_s)

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    # --- parser callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        self.headers_pending = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self.headers_pending = False
        self.body_pending = True
        self._cancel_request_timer()
        self.table.became_busy(self)
        super().on_headers_complete()
        if self.scope.get("path") in self.streams:
            self._bound_send_buffer()

    def on_message_complete(self) -> None:
        self.body_pending = False
        self._cancel_request_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._idle():
            self.table.became_idle(self)

    def _bound_send_buffer(self) -> None:
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SEND_BUFFER)
        self.transport.set_write_buffer_limits(high=STREAM_WRITE_HIGH_WATER)

    # --- time-outs ----------------------------------------------------------------

    def _arm_request_timer(self, after_s: float) -> None:
        self.request_timer = self.loop.call_later(after_s, self._request_timed_out)

    def _cancel_request_timer(self) -> None:
        if self.request_timer is not None:
            self.request_timer.cancel()
            self.request_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_request_timer()
        if self.write_timer is not None:
            self.write_timer.cancel()
            self.write_timer = None

    def _request_timed_out(self) -> None:
        self.request_timer = None
        if self.transport.is_closing():
            return
        if self.body_pending and self.cycle is not None and not self.cycle.response_started:
            # the application is waiting for the body: tell the client why, then close
            self.cycle.disconnected = True
            self.transport.write(TIMED_OUT)
            self.transport.close()
        else:
            self.transport.abort()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.write_timer is None:
            self.write_timer = self.loop.call_later(
                self.limits.write_timeout_s, self._write_stalled
            )

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.write_timer is not None:
            self.write_timer.cancel()
            self.write_timer = None

    def _write_stalled(self) -> None:
        """The client has read nothing for the write time-out: drop what is buffered for
        it, ours and the kernel's, with the connection (a close would wait for the buffer
        to drain, and the kernel would keep trying to deliver it)."""
        self.write_timer = None
        log.info(
            "cut off a client that stopped reading",
            extra={"client": self.client, "after_s": self.limits.write_timeout_s},
        )
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        self.transport.abort()
