"""A service's start and stop against a real nats-server."""

from __future__ import annotations

import asyncio
import time

from shared import subjects
from shared.bus import EventBus
from shared.consumer import ConsumerSpec, Delivery
from shared.events import Event
from shared.runtime import STOP_STEP_TIMEOUT_S, ServiceRuntime
from shared.settings import Settings
from shared.streams import INCIDENTS
from tests.conftest import RuntimeFactory


async def test_a_responder_answers_the_moment_the_service_is_ready(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    for n in range(20):
        runtime = ServiceRuntime(f"echo{n}", settings)

        async def echo(body: dict[str, object]) -> dict[str, object]:
            return body

        runtime.respond(f"vigil.test.echo.{n}", echo)
        await start_service(runtime)
        assert await bus.request(f"vigil.test.echo.{n}", {"n": n}) == {"n": n}


async def test_stop_ends_a_task_that_swallows_one_cancellation(
    settings: Settings, start_service: RuntimeFactory
) -> None:
    runtime = ServiceRuntime("stubborn", settings)
    entered, swallowed = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.set()  # as a library racing a timeout may do
        await asyncio.sleep(3600)

    runtime.background(stubborn)
    await start_service(runtime)
    await asyncio.wait_for(entered.wait(), 5)
    started = time.monotonic()
    await runtime.stop()
    assert swallowed.is_set()
    assert time.monotonic() - started < STOP_STEP_TIMEOUT_S


async def test_stop_is_bounded_when_a_stop_hook_hangs(
    settings: Settings, start_service: RuntimeFactory
) -> None:
    runtime = ServiceRuntime("hanging", settings)
    later_hook_ran = asyncio.Event()

    async def hang() -> None:
        await asyncio.Event().wait()

    async def later() -> None:
        later_hook_ran.set()

    runtime.on_stop(hang)
    runtime.on_stop(later)
    await start_service(runtime)
    started = time.monotonic()
    await runtime.stop()
    assert time.monotonic() - started < STOP_STEP_TIMEOUT_S + 2
    assert later_hook_ran.is_set()


async def test_a_batched_consumer_has_its_durable_once_the_service_is_ready(
    settings: Settings, bus: EventBus, start_service: RuntimeFactory
) -> None:
    runtime = ServiceRuntime("probe", settings)
    spec = ConsumerSpec(
        durable="probe-batched",
        stream=INCIDENTS,
        filter_subject=f"{subjects.INCIDENT_EVENTS}.>",
        batch=16,
    )

    async def nothing(items: list[tuple[Event, Delivery]]) -> None:
        return None

    runtime.consume_batches(spec, nothing)
    await start_service(runtime)
    info = await bus.js.consumer_info(INCIDENTS.name, "probe-batched")
    assert info.config.durable_name == "probe-batched"
