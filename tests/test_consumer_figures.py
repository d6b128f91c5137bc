"""A consumer's figures against a real server: handled, failed and dead-lettered
messages and the handling-time histogram, read from the service's own exposition."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shared import subjects
from shared.bus import EventBus
from shared.consumer import ConsumerSpec, Delivery
from shared.events import Event, IncidentOpened
from shared.natsserver import EmbeddedNats
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.streams import INCIDENTS
from tests.prom_text import parse, value
from tests.waiting import eventually

DURABLE = "figures-probe"


@pytest.fixture
async def runtime(nats_server: EmbeddedNats) -> AsyncIterator[ServiceRuntime]:
    rt = ServiceRuntime("probe", Settings(nats_url=nats_server.url, heartbeat_interval_s=0.2))
    yield rt
    await rt.stop()


async def test_handled_failed_and_dead_lettered_are_counted(
    runtime: ServiceRuntime, bus: EventBus
) -> None:
    spec = ConsumerSpec(
        durable=DURABLE,
        stream=INCIDENTS,
        filter_subject=f"{subjects.INCIDENT_EVENTS}.>",
        max_attempts=2,
        backoff_s=(0.01,),
    )
    good = asyncio.Event()

    async def picky(event: Event, delivery: Delivery) -> None:
        if event.aggregate_id == "poison":
            raise ValueError("cannot handle this one")
        good.set()

    runtime.consume(spec, picky)
    await runtime.start()

    async def figures() -> dict[str, dict[str, object]]:
        reply = await bus.request(subjects.self_metrics("probe"), {}, timeout=2.0)
        return parse(reply["text"])

    before = await figures()
    for aggregate in ("poison", "fine"):
        await bus.publish(
            subjects.incident(aggregate),
            IncidentOpened(aggregate_id=aggregate, title="t", severity="critical"),
        )
    await asyncio.wait_for(good.wait(), 10)

    def moved(now: dict[str, dict[str, object]], sample: str, **labels: str) -> float:
        return value(now, sample, **labels) - value(before, sample, **labels)

    async def counted() -> bool:
        now = await figures()
        return (
            moved(now, "vigil_consumer_messages_total", consumer=DURABLE, outcome="ok") == 1
            and moved(now, "vigil_consumer_messages_total", consumer=DURABLE, outcome="failed") == 2
            and moved(now, "vigil_consumer_dead_lettered_total", consumer=DURABLE) == 1
            and moved(now, "vigil_consumer_handling_seconds_count", consumer=DURABLE) == 3
        )

    await eventually(counted, within_s=10, what="the consumer's figures")
