"""An idle unordered consumer hands a lone event over at once, and idling logs nothing."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from faststream._internal.endpoint.subscriber.supervisor import TaskCallbackSupervisor

from shared import subjects
from shared.bus import EventBus
from shared.consumer import FETCH_TIMEOUT_S, ConsumerSpec, Delivery
from shared.events import Event, IncidentOpened
from shared.natsserver import EmbeddedNats
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.streams import INCIDENTS

LONE_EVENT_LIMIT_S = 0.1


def unordered() -> ConsumerSpec:
    return ConsumerSpec(
        durable="latency-probe",
        stream=INCIDENTS,
        filter_subject=f"{subjects.INCIDENT_EVENTS}.>",
        ordered=False,
    )


@pytest.fixture
async def runtime(nats_server: EmbeddedNats) -> AsyncIterator[ServiceRuntime]:
    rt = ServiceRuntime("probe", Settings(nats_url=nats_server.url, heartbeat_interval_s=5))
    yield rt
    await rt.stop()


async def test_lone_events_reach_an_idle_unordered_consumer_at_once_and_idling_logs_no_error(
    runtime: ServiceRuntime, bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def handle(event: Event, delivery: Delivery) -> None:
        arrived.put_nowait(time.perf_counter())

    # FastStream prints a task's crash once per process; an earlier test's must not hide it
    TaskCallbackSupervisor._TaskCallbackSupervisor__cache.clear()  # type: ignore[attr-defined]
    runtime.consume(unordered(), handle)
    await runtime.start()
    latencies = await lone_event_latencies(bus, arrived)
    slow = [round(x * 1000) for x in latencies if x >= LONE_EVENT_LIMIT_S]
    assert (slow, failures(caplog)) == ([], [])


async def lone_event_latencies(bus: EventBus, arrived: asyncio.Queue[float]) -> list[float]:
    """Publish→handle seconds of 40 lone events."""
    latencies = []
    for i in range(20):
        # idle past a fetch's timeout, then two events apart: the pattern that let a
        # pull request outlive its fetch and hold the second event back
        await asyncio.sleep(FETCH_TIMEOUT_S * 1.05 + (i % 5) * 0.1)
        for pair in ("a", "b"):
            sent = time.perf_counter()
            await bus.publish(
                subjects.incident(f"{pair}{i}"),
                IncidentOpened(aggregate_id=f"{pair}{i}", title="t", severity="critical"),
            )
            latencies.append(await asyncio.wait_for(arrived.get(), 5) - sent)
            await asyncio.sleep(0.2)
    return latencies


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What a healthy consumer must never log: errors and tracebacks (FastStream's
    "please consider opening issue" is an ERROR with the exception attached)."""
    return [
        r.getMessage()[:200]
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info is not None
    ]


async def test_lone_events_reach_an_idle_batched_consumer_at_once(
    runtime: ServiceRuntime, bus: EventBus
) -> None:
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def handle(batch: list[tuple[Event, Delivery]]) -> None:
        for _ in batch:
            arrived.put_nowait(time.perf_counter())

    spec = ConsumerSpec(
        durable="latency-probe-batched",
        stream=INCIDENTS,
        filter_subject=f"{subjects.INCIDENT_EVENTS}.>",
        batch=64,
    )
    runtime.consume_batches(spec, handle)
    await runtime.start()
    latencies = await lone_event_latencies(bus, arrived)
    assert [round(x * 1000) for x in latencies if x >= LONE_EVENT_LIMIT_S] == []
