"""A dead, refusing or hanging Vigil costs bounded memory and never holds up a request."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
from fastapi import FastAPI
from vigil_client import VigilASGIMiddleware, VigilClient

from shared.natsserver import free_port
from tests.client.conftest import INGEST_KEY, IngestReceiver
from tests.client.servers import http_client, uvicorn_serving


def test_backlog_stays_bounded_while_vigil_is_down_and_is_sent_when_it_returns(
    receiver: IngestReceiver,
) -> None:
    receiver.mode = "unavailable"
    client = VigilClient(
        receiver.url,
        INGEST_KEY,
        flush_interval_s=0.05,
        max_buffered_samples=300,
        max_batch_samples=50,
        max_routes=1000,
        retry_backoff_s=0.05,
    )
    try:
        for round_ in range(40):
            for n in range(20):
                client.record_request(f"/r/{round_}/{n}", "", "GET", 200, 0.001)
            time.sleep(0.01)
        receiver.wait_for(lambda: client.stats().dropped_samples > 0)
        stats = client.stats()
        assert stats.buffered_samples <= 300
        assert stats.failed_attempts >= 1 and stats.sent_samples == 0
        # every retry of a batch carries the key it was first sent with
        receiver.mode = "accept"
        receiver.wait_for(lambda: client.stats().buffered_samples == 0, timeout=30)
        receiver.wait_for(lambda: (receiver.value("vigil_client_dropped_samples_total") or 0) > 0)
    finally:
        client.close()
    assert receiver.refused == []
    assert len(set(receiver.keys)) == len(receiver.keys)


def test_a_dead_receiver_is_retried_with_backoff_and_keeps_memory_bounded() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    client = VigilClient(
        dead, INGEST_KEY, flush_interval_s=0.02, max_buffered_samples=500, max_routes=50
    )
    try:
        for n in range(5000):
            client.record_request(f"/p/{n}", "", "GET", 200, 0.001)
            if n % 100 == 0:
                time.sleep(0.005)
        time.sleep(0.3)
        stats = client.stats()
    finally:
        client.close(timeout_s=0.5)
    assert stats.buffered_samples <= 500
    assert stats.dropped_samples > 0
    # the route label took at most max_routes values (plus the overflow label)
    assert len(client.recorder.routes) == 50
    # backoff: far fewer attempts than the ~15 intervals that passed
    assert 1 <= stats.failed_attempts < 15


def test_a_hanging_receiver_does_not_hold_up_requests(receiver: IngestReceiver) -> None:
    receiver.mode = "hang"
    client = VigilClient(receiver.url, INGEST_KEY, flush_interval_s=0.05, timeout_s=60)
    app = FastAPI()
    app.add_middleware(VigilASGIMiddleware, client=client)

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    try:
        with uvicorn_serving(app, lifespan="off") as url, http_client(url) as http:
            http.get("/ping")
            receiver.wait_for(lambda: receiver.held == 1)
            # the pusher's thread is stuck in a POST; requests go on meanwhile
            answered = [http.get("/ping", timeout=5).status_code for _ in range(50)]
            assert answered == [200] * 50
            assert receiver.held == 1 and not receiver.release.is_set()
            closer = threading.Thread(target=client.close, kwargs={"timeout_s": 0.5})
            closer.start()
            closer.join(5)
            # closing gives up on a receiver that never answers, within its timeout
            assert not closer.is_alive()
    finally:
        receiver.release.set()


def test_refused_batches_are_dropped_not_retried(receiver: IngestReceiver) -> None:
    client = VigilClient(receiver.url, "vk_wrong", flush_interval_s=3600, start=False)
    client.record_request("/a", "", "GET", 200, 0.001)
    client.close()
    stats = client.stats()
    assert stats.rejected_samples > 0 and stats.buffered_samples == 0
    assert receiver.attempts == 1
    assert receiver.refused and "authorization" in receiver.refused[0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "vigil:8080"}, "url"),
        ({"ingest_key": ""}, "ingest_key"),
        ({"flush_interval_s": 0}, "flush_interval_s"),
        ({"labels": {"route": "x"}}, "labels['route']"),
        ({"labels": {"__x": "y"}}, "labels['__x']"),
        ({"max_batch_samples": 20_000}, "max_batch_samples"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    settings: dict[str, Any] = {"url": "http://127.0.0.1:1", "ingest_key": INGEST_KEY}
    with pytest.raises(ValueError, match=f"^{re.escape(field)}: "):
        VigilClient(**(settings | change), start=False)
