"""WSGI middleware: one record per request, taken when the server closes the response."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from vigil_client.asgi import ROUTE_KEY
from vigil_client.client import VigilClient
from vigil_client.defaults import default_client

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class VigilWSGIMiddleware:
    """Counts requests, errors (5xx and exceptions) and latency per route.

    ``app.wsgi_app = VigilWSGIMiddleware(app.wsgi_app, client)`` in Flask, or around
    Django's ``get_wsgi_application()``. The route is ``environ["vigil.route"]`` when the
    framework sets it (``vigil_client.set_route``; see the docs for Flask and Django),
    else the raw path, bounded. Latency runs until the server closes the response, so a
    streamed body counts whole. No network I/O happens on the request's thread.
    """

    def __init__(self, app: WSGIApp, client: VigilClient | None = None) -> None:
        self.app = app
        self.client = client

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        client = self.client or default_client()
        if client is None:
            return self.app(environ, start_response)
        exchange = _Exchange(client, environ, time.perf_counter())

        def recording_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            exchange.status = int(status.split(" ", 1)[0])
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        try:
            body = self.app(environ, recording_start_response)
        except Exception:
            exchange.finish(failed=True)
            raise
        return _RecordedBody(body, exchange)


class _Exchange:
    def __init__(self, client: VigilClient, environ: dict[str, Any], started: float) -> None:
        self.client = client
        self.environ = environ
        self.started = started
        self.status = 0
        self.done = False

    def finish(self, failed: bool = False) -> None:
        if self.done:
            return
        self.done = True
        environ = self.environ
        template = environ.get(ROUTE_KEY)
        self.client.record_request(
            template if isinstance(template, str) else None,
            str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", "")),
            str(environ.get("REQUEST_METHOD", "")),
            self.status or 500,
            time.perf_counter() - self.started,
            failed=failed or self.status == 0,
        )


class _RecordedBody:
    """The app's body, passed through; its end (close) is when the request is recorded."""

    def __init__(self, body: Iterable[bytes], exchange: _Exchange) -> None:
        self.body = body
        self.exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.body
        except Exception:
            self.exchange.finish(failed=True)
            raise

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.exchange.finish()
