"""The WSGI middleware on a real WSGI app served by wsgiref, pushing to a real receiver."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
from vigil_client import VigilClient, VigilWSGIMiddleware, configure, set_route
from vigil_client.defaults import replace_default
from vigil_client.recorder import NOT_FOUND

from tests.client.conftest import INGEST_KEY, IngestReceiver
from tests.client.servers import wsgiref_serving

USER = re.compile(r"^/users/(\w+)$")


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """A small router that names its routes the way a Flask or Django hook would."""
    path = environ["PATH_INFO"]
    if USER.match(path):
        set_route(environ, "/users/<name>")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"user"]
    if path == "/crash":
        set_route(environ, "/crash")
        raise ValueError("broken")
    if path == "/unavailable":
        set_route(environ, "/unavailable")
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"later"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return slow_body()
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"nothing here"]


def slow_body() -> Iterator[bytes]:
    for _ in range(3):
        time.sleep(0.1)
        yield b"chunk"


def test_counts_errors_and_latency_per_route(receiver: IngestReceiver) -> None:
    client = VigilClient(receiver.url, INGEST_KEY, flush_interval_s=3600)
    with (
        wsgiref_serving(VigilWSGIMiddleware(app, client)) as url,
        httpx.Client(base_url=url) as http,
    ):
        for name in ("ann", "bob"):
            assert http.get(f"/users/{name}").status_code == 200
        assert http.get("/crash").status_code == 500
        assert http.get("/unavailable").status_code == 503
        assert http.get("/stream").text == "chunk" * 3
        assert http.get("/random/probe").status_code == 404
    client.close()
    assert receiver.refused == []
    requests = "app_requests_total"
    assert receiver.latest(requests, route="/users/<name>", method="GET", status_class="2xx") == 2
    assert receiver.latest(requests, route="/crash", status_class="5xx") == 1
    assert receiver.latest(requests, route=NOT_FOUND, status_class="4xx") == 1
    assert receiver.latest("app_errors_total", route="/crash") == 1
    assert receiver.latest("app_errors_total", route="/unavailable") == 1
    assert receiver.latest("app_errors_total", route="/users/<name>") == 0
    assert receiver.latest("app_error_rate_percent", route="/unavailable") == 100
    # the raw path, as no route was named; the streamed body counts whole
    assert receiver.latest("app_response_time_ms", route="/stream") >= 300
    assert receiver.latest("app_response_time_ms", route="/users/<name>") < receiver.latest(
        "app_response_time_ms", route="/stream"
    )


def test_uses_the_default_client_when_given_none(receiver: IngestReceiver) -> None:
    client = configure(receiver.url, INGEST_KEY, flush_interval_s=3600)
    try:
        with wsgiref_serving(VigilWSGIMiddleware(app)) as url:
            assert httpx.get(f"{url}/users/cy").status_code == 200
        client.close()
        assert receiver.latest("app_requests_total", route="/users/<name>") == 1
    finally:
        replace_default(None)
