"""The ack policy against a real server: retry with delay, dead-letter, never drop."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
from collections.abc import AsyncIterator

import pytest

from shared import subjects
from shared.bus import EventBus
from shared.consumer import ConsumerSpec, Delivery, process_batch
from shared.events import Event, IncidentOpened, MessageDeadLettered, UndecodableEvent
from shared.natsserver import EmbeddedNats
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.streams import INCIDENTS
from tests.waiting import eventually


def spec(max_attempts: int = 3) -> ConsumerSpec:
    return ConsumerSpec(
        durable="probe",
        stream=INCIDENTS,
        filter_subject=f"{subjects.INCIDENT_EVENTS}.>",
        max_attempts=max_attempts,
        backoff_s=(0.01, 0.02, 0.05),
    )


@pytest.fixture
async def runtime(nats_server: EmbeddedNats) -> AsyncIterator[ServiceRuntime]:
    rt = ServiceRuntime("probe", Settings(nats_url=nats_server.url, heartbeat_interval_s=0.2))
    yield rt
    await rt.stop()


async def dead_letters(bus: EventBus) -> list[MessageDeadLettered]:
    found = [r.event async for r in bus.replay("DEADLETTERS")]
    return [e for e in found if isinstance(e, MessageDeadLettered)]


async def test_failing_handler_is_retried_then_succeeds(
    runtime: ServiceRuntime, bus: EventBus
) -> None:
    attempts: list[int] = []
    done = asyncio.Event()

    async def flaky(event: Event, delivery: Delivery) -> None:
        attempts.append(delivery.deliveries)
        if delivery.deliveries < 3:
            raise RuntimeError("database briefly away")
        done.set()

    runtime.consume(spec(max_attempts=5), flaky)
    await runtime.start()
    await bus.publish(
        subjects.incident("a"), IncidentOpened(aggregate_id="a", title="t", severity="critical")
    )
    await asyncio.wait_for(done.wait(), 10)
    assert attempts == [1, 2, 3]
    assert await dead_letters(bus) == []


async def test_poison_message_is_dead_lettered_and_the_stream_moves_on(
    runtime: ServiceRuntime, bus: EventBus
) -> None:
    handled: list[str] = []
    second = asyncio.Event()

    async def picky(event: Event, delivery: Delivery) -> None:
        if event.aggregate_id == "poison":
            raise ValueError("cannot handle this one")
        handled.append(event.aggregate_id)
        second.set()

    runtime.consume(spec(max_attempts=3), picky)
    await runtime.start()
    await bus.publish(
        subjects.incident("poison"),
        IncidentOpened(aggregate_id="poison", title="t", severity="critical"),
    )
    await bus.publish(
        subjects.incident("fine"),
        IncidentOpened(aggregate_id="fine", title="t", severity="critical"),
    )
    await asyncio.wait_for(second.wait(), 10)
    letters = await dead_letters(bus)
    assert len(letters) == 1
    assert letters[0].deliveries == 3
    assert "cannot handle this one" in letters[0].error
    assert handled == ["fine"]


async def test_undecodable_message_is_dead_lettered_at_once(
    runtime: ServiceRuntime, bus: EventBus
) -> None:
    seen = asyncio.Event()

    async def handler(event: Event, delivery: Delivery) -> None:
        seen.set()

    runtime.consume(spec(), handler)
    await runtime.start()
    await bus.js.publish(subjects.incident("junk"), b"{not json")
    await bus.publish(
        subjects.incident("ok"), IncidentOpened(aggregate_id="ok", title="t", severity="info")
    )
    await asyncio.wait_for(seen.wait(), 10)
    letters = await dead_letters(bus)
    assert [(d.deliveries, d.payload) for d in letters] == [(1, "{not json")]


def batch_spec(max_attempts: int = 3) -> ConsumerSpec:
    return ConsumerSpec(
        durable="probe-batch",
        stream=INCIDENTS,
        filter_subject=f"{subjects.INCIDENT_EVENTS}.>",
        max_attempts=max_attempts,
        backoff_s=(0.01, 0.02, 0.05),
        batch=16,
    )


def opened(incident_id: str) -> IncidentOpened:
    return IncidentOpened(aggregate_id=incident_id, title="t", severity="critical")


async def test_batches_arrive_in_stream_order_and_failures_retry_in_place(
    runtime: ServiceRuntime, bus: EventBus
) -> None:
    for n in range(40):
        await bus.publish(subjects.incident(f"i{n}"), opened(f"i{n}"))
    handled: list[int] = []
    calls = 0
    done = asyncio.Event()

    async def flaky_batch(items: list[tuple[Event, Delivery]]) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("transaction failed")
        handled.extend(d.stream_seq for _, d in items)
        if len(handled) >= 40:
            done.set()

    runtime.consume_batches(batch_spec(), flaky_batch)
    await runtime.start()
    await asyncio.wait_for(done.wait(), 10)
    assert handled == list(range(1, 41))
    assert calls > 2  # more than one batch, and the failed one was retried
    assert await dead_letters(bus) == []


async def test_poison_message_in_a_batch_is_isolated_and_dead_lettered(
    runtime: ServiceRuntime, bus: EventBus
) -> None:
    for name in ("a", "poison", "b"):
        await bus.publish(subjects.incident(name), opened(name))
    await bus.js.publish(subjects.incident("junk"), b"not an event")
    handled: list[str] = []
    done = asyncio.Event()

    async def picky(items: list[tuple[Event, Delivery]]) -> None:
        if any(event.aggregate_id == "poison" for event, _ in items):
            raise ValueError("cannot store this one")
        handled.extend(event.aggregate_id for event, _ in items)
        if "b" in handled:
            done.set()

    runtime.consume_batches(batch_spec(max_attempts=2), picky)
    await runtime.start()
    await asyncio.wait_for(done.wait(), 10)
    assert handled == ["a", "b"]
    letters = await dead_letters(bus)
    assert len(letters) == 2
    assert sorted("poison" in d.payload for d in letters) == [False, True]
    assert any(d.payload == "not an event" for d in letters)


async def test_a_batch_handler_finding_a_message_malformed_isolates_it_without_retries(
    runtime: ServiceRuntime, bus: EventBus
) -> None:
    for name in ("a", "malformed", "b"):
        await bus.publish(subjects.incident(name), opened(name))
    calls: list[list[str]] = []
    done = asyncio.Event()

    async def strict(items: list[tuple[Event, Delivery]]) -> None:
        calls.append([event.aggregate_id for event, _ in items])
        if any(event.aggregate_id == "malformed" for event, _ in items):
            raise UndecodableEvent("a series label is not printable")
        if any(event.aggregate_id == "b" for event, _ in items):
            done.set()

    # a retry would wait 30 s: the test's wait is over before one could happen
    patient = dataclasses.replace(batch_spec(max_attempts=50), backoff_s=(30.0,))
    runtime.consume_batches(patient, strict)
    await runtime.start()
    await asyncio.wait_for(done.wait(), 10)
    assert calls[0] == ["a", "malformed", "b"]
    assert calls[1:] == [["a"], ["malformed"], ["b"]]
    [letter] = await dead_letters(bus)
    assert "malformed" in letter.payload and "not printable" in letter.error


async def test_after_a_crash_a_batch_consumer_resumes_in_order_at_its_checkpoint(
    runtime: ServiceRuntime, bus: EventBus
) -> None:
    """A process that died holding messages 3-5 unacknowledged: its successor must not
    see 6-8 first, or a projection would checkpoint 8 and then skip 3-5 as applied."""
    for n in range(1, 9):
        await bus.publish(subjects.incident(f"i{n}"), opened(f"i{n}"))
    spec = batch_spec()
    crashed = await bus.js.pull_subscribe(
        spec.filter_subject, durable=spec.durable, stream="INCIDENTS", config=spec.consumer_config()
    )
    for msg in await crashed.fetch(2, timeout=2):
        await msg.ack_sync()
    assert len(await crashed.fetch(3, timeout=2)) == 3  # then the process died: never acked
    await crashed.unsubscribe()

    applied = 2  # the projection's checkpoint, committed with messages 1-2
    handled: list[int] = []
    done = asyncio.Event()

    async def projection(items: list[tuple[Event, Delivery]]) -> None:
        nonlocal applied
        fresh = [d.stream_seq for _, d in items if d.stream_seq > applied]
        handled.extend(fresh)
        applied = max([applied, *fresh])
        if applied >= 8:
            done.set()

    async def checkpoint() -> int:
        return applied

    runtime.consume_batches(spec, projection, checkpoint)
    await runtime.start()
    await asyncio.wait_for(done.wait(), 10)  # not after the 30 s ack wait
    assert handled == [3, 4, 5, 6, 7, 8]


async def test_an_ordered_consumer_gets_a_crashed_process_message_at_once(
    runtime: ServiceRuntime, bus: EventBus
) -> None:
    """Without help the held message would come back only after the 30 s ack wait."""
    for n in range(1, 4):
        await bus.publish(subjects.incident(f"i{n}"), opened(f"i{n}"))
    ordered = spec()
    crashed = await bus.js.pull_subscribe(
        ordered.filter_subject,
        durable=ordered.durable,
        stream="INCIDENTS",
        config=ordered.consumer_config(),
    )
    (first,) = await crashed.fetch(1, timeout=2)
    await first.ack_sync()
    assert len(await crashed.fetch(1, timeout=2)) == 1  # then the process died: never acked
    await crashed.unsubscribe()

    handled: list[int] = []
    done = asyncio.Event()

    async def handler(event: Event, delivery: Delivery) -> None:
        handled.append(delivery.stream_seq)
        if delivery.stream_seq == 3:
            done.set()

    runtime.consume(ordered, handler)
    await runtime.start()
    await asyncio.wait_for(done.wait(), 10)
    assert handled == [2, 3]


def disk_full() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


async def test_a_full_disk_is_retried_past_max_attempts_and_never_dead_lettered(
    runtime: ServiceRuntime, bus: EventBus
) -> None:
    attempts: list[int] = []
    faults_seen: list[dict[str, str]] = []
    done = asyncio.Event()

    async def blocked_by_disk(event: Event, delivery: Delivery) -> None:
        attempts.append(delivery.deliveries)
        faults_seen.append(runtime.faults.snapshot())
        if delivery.deliveries <= 6:
            raise disk_full()
        done.set()

    runtime.consume(spec(max_attempts=3), blocked_by_disk)
    await runtime.start()
    await bus.publish(
        subjects.incident("a"), IncidentOpened(aggregate_id="a", title="t", severity="critical")
    )
    await asyncio.wait_for(done.wait(), 20)
    assert attempts == [1, 2, 3, 4, 5, 6, 7]
    assert faults_seen[-1] == {"probe": "storage: No space left on device"}
    assert runtime.faults.snapshot() == {}  # cleared by the success
    assert await dead_letters(bus) == []
    heartbeat = runtime.status()
    assert heartbeat["faults"] == {}


async def test_a_batch_blocked_by_the_disk_is_retried_in_place_until_it_is_mended(
    runtime: ServiceRuntime, bus: EventBus
) -> None:
    batches: list[list[int]] = []
    done = asyncio.Event()

    async def blocked_by_disk(items: list[tuple[Event, Delivery]]) -> None:
        batches.append([d.stream_seq for _, d in items])
        if len(batches) <= 5:
            raise disk_full()
        done.set()

    batched = ConsumerSpec(
        durable="probe-batch",
        stream=INCIDENTS,
        filter_subject=f"{subjects.INCIDENT_EVENTS}.>",
        max_attempts=2,
        backoff_s=(0.01, 0.02),
        batch=16,
    )
    for name in ("a", "b"):
        await bus.publish(
            subjects.incident(name),
            IncidentOpened(aggregate_id=name, title="t", severity="critical"),
        )
    runtime.consume_batches(batched, blocked_by_disk)
    await runtime.start()
    await asyncio.wait_for(done.wait(), 20)
    assert batches[0] == batches[-1] == [1, 2]
    assert await dead_letters(bus) == []


async def test_a_message_fetched_twice_in_one_batch_is_handed_over_once_in_order(
    bus: EventBus,
) -> None:
    """Deliveries left in a subscription from before its durable was created again come
    in the same fetch as the fresh ones; a projection would store them twice."""
    for n in range(1, 4):
        await bus.publish(subjects.incident(f"i{n}"), opened(f"i{n}"))
    spec = batch_spec()
    subscription = await bus.js.pull_subscribe(
        spec.filter_subject, durable=spec.durable, stream="INCIDENTS", config=spec.consumer_config()
    )
    first = await subscription.fetch(3, timeout=2)
    await bus.js.delete_consumer("INCIDENTS", spec.durable)
    again = await bus.js.pull_subscribe(
        spec.filter_subject, durable=spec.durable, stream="INCIDENTS", config=spec.consumer_config()
    )
    fresh = await again.fetch(3, timeout=2)
    handed: list[list[int]] = []

    async def projection(items: list[tuple[Event, Delivery]]) -> None:
        handed.append([d.stream_seq for _, d in items])

    await process_batch(bus, spec, [first[2], *fresh, first[0]], projection)
    assert handed == [[1, 2, 3]]

    async def nothing_pending() -> bool:
        # the server takes acknowledgements in asynchronously, even after a flush
        info = await bus.js.consumer_info("INCIDENTS", spec.durable)
        return info.num_ack_pending == 0

    await eventually(nothing_pending, within_s=5, what="every message acknowledged")
    await subscription.unsubscribe()
    await again.unsubscribe()
