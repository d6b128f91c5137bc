"""``VigilLogHandler`` against the gateway's real HTTP server on a real nats-server:
records arrive as log lines, emit never blocks, memory stays bounded while Vigil is down,
lines wait out an outage and are stored once, and the handler never ships its own
warnings."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import httpx
import pytest
from vigil_client import VigilClient, VigilLogHandler

from services.gateway.app import Gateway, build_gateway
from shared import subjects
from shared.bus import EventBus
from shared.events import LogEntry, LogsIngested
from shared.natsserver import free_port
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.conftest import gateway, gateway_settings
from tests.gateway.identities import headers_for
from tests.waiting import eventually

__all__ = ["gateway", "gateway_settings"]  # fixtures used here


async def stored(bus: EventBus) -> list[LogEntry]:
    recorded = await bus.read_subject(subjects.log_entries("api"))
    return [e for r in recorded if isinstance(r.event, LogsIngested) for e in r.event.entries]


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("shop.orders")
    logger.setLevel(1)
    logger.propagate = False
    yield logger
    for handler in list(logger.handlers):
        if isinstance(handler, VigilLogHandler):
            logger.removeHandler(handler)
            handler.close(timeout_s=1.0)


async def ingest_key(gateway: Gateway, settings: Settings) -> tuple[str, str]:
    await eventually(lambda: gateway.http.started)
    base = f"http://127.0.0.1:{settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
        headers = await headers_for(gateway.app, http, "ingest")
    return base, headers["Authorization"].removeprefix("Bearer ")


async def test_records_arrive_as_log_lines(
    gateway: Gateway, gateway_settings: Settings, bus: EventBus, logger: logging.Logger
) -> None:
    base, key = await ingest_key(gateway, gateway_settings)
    client = VigilClient(base, key, service="shop", labels={"env": "test"}, start=False)
    await asyncio.to_thread(client.close)  # only its configuration is wanted here
    handler = VigilLogHandler(client=client, flush_interval_s=0.05)
    logger.addHandler(handler)
    logger.info("order %s placed", "o-1", extra={"order_id": "o-1", "amount": 3, "obj": {1, 2}})
    try:
        raise ValueError("card expired")
    except ValueError:
        logger.exception("payment failed")
    logger.debug("cart\x00loaded")
    logger.log(5, "very fine detail")
    logger.critical("out of stock")
    lines = await eventually(lambda: _when(stored(bus), 5), 15, "the five lines")
    placed, failed, loaded, fine, out = lines
    assert placed["message"] == "order o-1 placed"
    assert placed["level"] == "info" and placed["service"] == "shop"
    assert placed["labels"]["env"] == "test" and placed["labels"]["logger"] == "shop.orders"
    assert "instance" in placed["labels"]
    assert placed["fields"]["order_id"] == "o-1" and placed["fields"]["amount"] == 3
    assert placed["fields"]["obj"] == "{1, 2}"
    assert placed["fields"]["function"] == "test_records_arrive_as_log_lines"
    assert abs((placed["timestamp"] or 0) - time.time()) < 10
    assert failed["level"] == "error"
    assert failed["message"].startswith("payment failed\nTraceback")
    assert "ValueError: card expired" in failed["message"]
    assert failed["fields"]["exception"] == "ValueError"
    assert loaded["level"] == "debug" and loaded["message"] == "cart\ufffdloaded"
    assert fine["level"] == "trace"
    assert out["level"] == "fatal"
    assert handler.stats().sent_lines == 5


async def _when(found: object, count: int) -> list[LogEntry] | None:
    lines: list[LogEntry] = await found  # type: ignore[misc]
    return lines if len(lines) >= count else None


def test_emit_never_blocks_and_memory_stays_bounded_while_vigil_is_down() -> None:
    root = logging.getLogger()
    level = root.level
    handler = VigilLogHandler(
        f"http://127.0.0.1:{free_port()}",
        "vk_unused",
        max_buffered_lines=100,
        max_batch_lines=50,
        retry_backoff_s=0.05,
    )
    # on the root logger: the handler's own warnings about the outage pass through it
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        started = time.monotonic()
        for n in range(5000):
            logging.getLogger("app").info("line %d", n)
        took = time.monotonic() - started
        deadline = time.monotonic() + 10
        while handler.stats().failed_attempts < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = handler.stats()
        assert stats.failed_attempts >= 2 and stats.sent_lines == 0
        assert stats.buffered_lines <= 150
        assert stats.dropped_lines + stats.buffered_lines == 5000
        waiting = list(handler.shipper._lines)
        assert all(line["message"].startswith("line ") for line in waiting)
        assert waiting[-1]["message"] == "line 4999"  # the oldest went, the newest stay
        assert took < 2.0, f"5000 records took {took:.2f} s"
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        started = time.monotonic()
        handler.close(timeout_s=1.0)
        assert time.monotonic() - started < 3


async def test_lines_wait_out_an_outage_and_are_stored_once(
    gateway_settings: Settings,
    start_service: RuntimeFactory,
    bus: EventBus,
    logger: logging.Logger,
) -> None:
    from tests.gateway.identities import ADMIN_KEY

    handler = VigilLogHandler(
        f"http://127.0.0.1:{gateway_settings.port}",
        ADMIN_KEY,
        service="shop",
        flush_interval_s=0.05,
        max_batch_lines=7,
        retry_backoff_s=0.05,
    )
    logger.addHandler(handler)
    for n in range(30):
        logger.warning("queued %d", n)
    await eventually(lambda: handler.stats().failed_attempts >= 2, what="failures")
    # in this process uvicorn's logging setup closes every handler, as it would an
    # application's: a handler still attached goes on working
    await start_service(build_gateway(gateway_settings).runtime)
    logger.warning("after the restart")
    await eventually(lambda: handler.stats().sent_lines == 31, 20, "all sent")
    lines = await stored(bus)
    assert [line["message"] for line in lines] == [
        *(f"queued {n}" for n in range(30)),
        "after the restart",
    ]
    assert handler.stats().dropped_lines == 0


async def test_refused_lines_are_counted_not_retried_and_close_sends_the_rest(
    gateway: Gateway, gateway_settings: Settings, bus: EventBus, logger: logging.Logger
) -> None:
    base, key = await ingest_key(gateway, gateway_settings)
    wrong = VigilLogHandler(base, "vk_wrong", flush_interval_s=0.05, retry_backoff_s=0.05)
    logger.addHandler(wrong)
    logger.error("never stored")
    await eventually(lambda: wrong.stats().rejected_lines == 1, what="the refusal")
    logger.removeHandler(wrong)
    await asyncio.to_thread(wrong.close, 2.0)
    assert wrong.stats().failed_attempts == 0

    slow = VigilLogHandler(base, key, flush_interval_s=3600)
    logger.addHandler(slow)
    for n in range(3):
        logger.info("at exit %d", n)
    logger.removeHandler(slow)
    await asyncio.to_thread(slow.close, 5.0)
    assert [line["message"] for line in await stored(bus)] == [f"at exit {n}" for n in range(3)]
