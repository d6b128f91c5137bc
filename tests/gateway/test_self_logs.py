"""VIGIL_SELF_LOGS=1: the services' own log records become searchable log lines of
service <name>, source self; bounded, rate-limited, and never fed by their own shipping."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.gateway.app import Gateway
from services.metrics.app import build as build_metrics
from shared import selflogs, subjects
from shared.bus import EventBus
from shared.events import LogsIngested
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.identities import with_admin_key
from tests.waiting import eventually

URL = "/api/monitoring/logs"


@pytest.fixture(autouse=True)
def info_records() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    yield
    root.setLevel(level)


@pytest.fixture
def gateway_settings(settings: Settings) -> Settings:
    from shared.natsserver import free_port

    update = {"port": free_port(), "self_logs": True}
    return with_admin_key(settings.model_copy(update=update))


@pytest.fixture
async def metrics(gateway_settings: Settings, start_service: RuntimeFactory) -> ServiceRuntime:
    return await start_service(build_metrics(gateway_settings))


async def found(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(URL, params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


async def test_a_running_services_log_lines_become_searchable(
    client: httpx.AsyncClient, gateway: Gateway, metrics: ServiceRuntime, bus: EventBus
) -> None:
    async def ready_lines() -> list[dict[str, Any]] | None:
        lines = await found(client, q='"service ready"', labels="logger=shared.runtime")
        return lines if {line["service"] for line in lines} >= {"gateway", "metrics"} else None

    lines = await eventually(ready_lines, 15, "both services' start")
    by_service = {line["service"]: line for line in lines}
    assert by_service["metrics"]["level"] == "info"
    assert by_service["metrics"]["fields"]["service"] == "metrics"
    assert by_service["gateway"]["labels"]["instance"]
    warned = await found(client, service="gateway", level="warn", q="bootstrap admin key")
    assert warned and warned[0]["labels"]["logger"] == "services.gateway.identity.section"

    # a record of the running service, searched by its words and fields
    async def log_from_the_service() -> None:
        logging.getLogger("services.metrics.example").error(
            "disk nearly full on %s", "/data", extra={"free_bytes": 1024}
        )

    await asyncio.create_task(log_from_the_service(), context=_service_context("metrics"))
    [line] = await eventually(
        lambda: found(client, q="disk nearly full", level="error"), 15, "the error"
    )
    assert line["service"] == "metrics" and line["level"] == "error"
    assert line["fields"]["free_bytes"] == 1024
    # debug records are not shipped, and nothing but the self source carries them
    recorded = await bus.read_subject(subjects.log_entries("self"))
    assert recorded and all(isinstance(r.event, LogsIngested) for r in recorded)
    assert all(e["level"] != "debug" for r in recorded for e in r.event.entries)  # type: ignore[attr-defined]


def _service_context(name: str) -> Any:
    import contextvars

    context = contextvars.copy_context()
    context.run(selflogs.CURRENT_SERVICE.set, name)
    return context


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("app", level, __file__, 1, message, None, None)


def test_lines_over_the_rate_are_counted_and_reported_in_one_line() -> None:
    queue = selflogs.SelfLogQueue("alerts")
    for n in range(int(selflogs.BURST) + 300):
        queue.add(record(f"line {n}"))
    queued, suppressed = len(queue), queue.suppressed
    assert queued <= selflogs.BURST + 5  # the bucket refills a little meanwhile
    assert suppressed >= 295 and queued + suppressed == selflogs.BURST + 300
    everything = []
    while batch := queue.take():
        assert len(batch) <= selflogs.MAX_BATCH + 1
        everything += batch
    notices = [e for e in everything if "were not shipped" in e["message"]]
    assert len(notices) == 1 and notices[0]["level"] == "warn"
    assert notices[0]["fields"] == {"suppressed": suppressed, "dropped": 0}
    assert len(everything) == queued + 1


async def test_a_failing_publish_is_counted_and_what_it_logs_is_not_queued() -> None:
    queue = selflogs.install("notifier")
    try:
        logging.getLogger("services.notifier.x").warning("before the outage")
        assert len(queue) == 1

        async def failing(subject: str, event: LogsIngested) -> int:
            # what the NATS client does on a dead connection: log, then raise
            logging.getLogger("nats.aio.client").error("nats: connection closed")
            raise ConnectionError("connection closed")

        assert await selflogs.ship(queue, failing) == 0
        assert queue.failed_publishes == 1
        assert len(queue) == 0  # the batch was taken; nothing came back from the failure
        sent: list[LogsIngested] = []

        async def working(subject: str, event: LogsIngested) -> int:
            sent.append(event)
            return 1

        logging.getLogger("services.notifier.x").info("after the outage")
        logging.getLogger("services.notifier.x").debug("not shipped")
        assert await selflogs.ship(queue, working) == 2
        assert [e["message"] for e in sent[0].entries] == [
            "after the outage",
            "1 log lines of notifier were not shipped (0 over 50 a second, 1 dropped: the "
            "queue was full or the event log did not take them)",
        ]
        assert sent[0].aggregate_id == "self"
    finally:
        selflogs.uninstall("notifier")
    assert selflogs._handler is None
