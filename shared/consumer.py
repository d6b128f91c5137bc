"""Durable JetStream consumers with an explicit acknowledgement policy.

FastStream's default policy would terminate a message whose handler raised. Here
every subscriber acks by hand: success acks; an error naks with a growing delay;
after ``max_attempts`` deliveries, or at once for a permanent error or an
undecodable message, the message is copied to the dead-letter stream and only
then acked. Nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from faststream.middlewares import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError

from shared import subjects
from shared.bus import EventBus
from shared.errors import PermanentDeliveryError
from shared.events import Event, MessageDeadLettered, UndecodableEvent, decode_event, derived_id
from shared.faults import FaultBoard, environmental_cause
from shared.selfmetrics import CONSUMER_DEAD_LETTERED, CONSUMER_MESSAGES, CONSUMER_SECONDS
from shared.streams import StreamSpec

log = logging.getLogger(__name__)

DEFAULT_BACKOFF_S = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# A full disk or a broker away is retried without end, but often: work must resume
# within seconds of the operator mending it.
ENVIRONMENT_RETRY_MAX_S = 2.0
# How long one pull request waits for messages. A request the server lost (it was
# restarted) is only replaced when this runs out, so it bounds the pause after a restart.
FETCH_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Delivery:
    """Where a message came from, for idempotency and logs."""

    stream: str
    subject: str
    stream_seq: int
    deliveries: int
    consumer: str
    # handed over again by an operator's re-drive of its dead letter (shared.redrive):
    # a handler that settled the message for good may reopen it
    redrive: bool = False


Handler = Callable[[Event, Delivery], Awaitable[None]]
BatchHandler = Callable[[list[tuple[Event, Delivery]]], Awaitable[None]]
Checkpoint = Callable[[], Awaitable[int]]


@dataclass(frozen=True)
class ConsumerSpec:
    durable: str
    stream: StreamSpec
    filter_subject: str
    ordered: bool = True  # one message in flight: required by projections that checkpoint
    max_attempts: int = 8
    backoff_s: tuple[float, ...] = field(default=DEFAULT_BACKOFF_S)
    ack_wait_s: float = 30.0
    max_ack_pending: int = 256  # when not ordered
    workers: int = 16  # messages handled at once when not ordered
    batch: int = 1  # >1: hand up to this many messages over at once, in stream order

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=JsAckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_deliver=-1,  # bounded by max_attempts here, then dead-lettered
            max_ack_pending=self.batch
            if self.batch > 1
            else (1 if self.ordered else self.max_ack_pending),
            filter_subject=self.filter_subject,
        )

    def delay_for(self, deliveries: int) -> float:
        return self.backoff_s[min(deliveries, len(self.backoff_s)) - 1]


async def dead_letter(
    bus: EventBus, spec: ConsumerSpec, msg: Msg, deliveries: int, stream_seq: int, error: str
) -> None:
    record = MessageDeadLettered(
        id=dead_letter_id(spec, spec.stream.name, stream_seq),
        aggregate_id=spec.durable,
        consumer=spec.durable,
        stream=spec.stream.name,
        stream_seq=stream_seq,
        subject=msg.subject,
        deliveries=deliveries,
        error=error[:2000],
        payload=_printable(msg.data),
    )
    await bus.publish(subjects.dead_letter(spec.durable), record)
    CONSUMER_DEAD_LETTERED.inc(consumer=spec.durable)
    log.error(
        "dead-lettered message",
        extra={"consumer": spec.durable, "stream_seq": stream_seq, "error": error[:200]},
    )


def dead_letter_id(spec: ConsumerSpec, stream: str, stream_seq: int) -> str:
    """One dead letter per (consumer, message): the same message dead-lettered twice is
    stored once, and a re-drive can check what it is asked to retry."""
    return derived_id("dead-letter", spec.durable, stream, stream_seq)


def _printable(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


async def process(
    bus: EventBus,
    spec: ConsumerSpec,
    msg: Msg,
    handler: Handler,
    faults: FaultBoard | None = None,
) -> None:
    """Apply the ack policy around one handler call, counted in the service's figures."""
    started = time.perf_counter()
    try:
        handled = await _process(bus, spec, msg, handler, faults)
    finally:
        CONSUMER_SECONDS.observe(time.perf_counter() - started, consumer=spec.durable)
    CONSUMER_MESSAGES.inc(consumer=spec.durable, outcome="ok" if handled else "failed")


async def _process(
    bus: EventBus,
    spec: ConsumerSpec,
    msg: Msg,
    handler: Handler,
    faults: FaultBoard | None = None,
) -> bool:
    """Apply the ack policy around one handler call; True when the handler succeeded."""
    delivery = _delivery(spec, msg)
    try:
        event = decode_event(msg.data)
        await handler(event, delivery)
    except (UndecodableEvent, PermanentDeliveryError) as exc:
        await dead_letter(bus, spec, msg, delivery.deliveries, delivery.stream_seq, str(exc))
        await msg.ack()
        return False
    except Exception as exc:
        cause = environmental_cause(exc)
        if cause is not None:
            # not the message's fault: never dead-lettered, retried until it is mended
            _report(faults, spec, cause, delivery.stream_seq)
            await msg.nak(delay=min(spec.delay_for(delivery.deliveries), ENVIRONMENT_RETRY_MAX_S))
            return False
        if delivery.deliveries >= spec.max_attempts:
            await dead_letter(
                bus,
                spec,
                msg,
                delivery.deliveries,
                delivery.stream_seq,
                f"{type(exc).__name__}: {exc}",
            )
            await msg.ack()
            return False
        # a transport may say when to come back (HTTP Retry-After)
        delay = max(spec.delay_for(delivery.deliveries), getattr(exc, "retry_after_s", 0.0) or 0.0)
        log.warning(
            "handler failed; redelivering",
            extra={
                "consumer": spec.durable,
                "stream_seq": delivery.stream_seq,
                "deliveries": delivery.deliveries,
                "delay_s": delay,
                "error": repr(exc)[:300],
            },
            exc_info=delivery.deliveries == 1,
        )
        await msg.nak(delay=delay)
        return False
    else:
        await msg.ack()
        if faults is not None:
            faults.clear(spec.durable)
        return True


def _report(faults: FaultBoard | None, spec: ConsumerSpec, cause: str, stream_seq: int) -> None:
    if faults is not None:
        faults.report(spec.durable, cause)
    log.warning(
        "handler blocked by its surroundings; retrying",
        extra={"consumer": spec.durable, "stream_seq": stream_seq, "error": cause},
    )


async def _raw_message(message: Any) -> Any:
    """Hand the handler nats-py's message as it came: bodies are decoded once, by
    decode_event, and the ack policy needs the raw message anyway."""
    return message.raw_message


def subscribe(
    broker: NatsBroker,
    bus: Callable[[], EventBus],
    spec: ConsumerSpec,
    handler: Handler,
    faults: FaultBoard | None = None,
    inbox_prefix: str = "_INBOX",
) -> None:
    """Register ``handler`` as a durable pull subscriber on ``broker``.

    ``inbox_prefix`` is the connection's: the pulled messages come to an inbox the
    service's NATS user may subscribe to.
    """

    @broker.subscriber(
        spec.filter_subject,
        stream=JStream(spec.stream.name, declare=False),
        durable=spec.durable,
        config=spec.consumer_config(),
        # One message per pull request, also with many workers: nats-py's multi-message
        # fetch can leave a pull request on the server that outlives the fetch (when a
        # late status answers its no-wait probe); the next fetch then waits for that
        # request to expire before handing over what it caught (up to FETCH_TIMEOUT_S
        # for one event), and raises a bare TimeoutError FastStream logs as a crash.
        # A one-message fetch returns at its first message; the workers still run
        # concurrently, each pull is a loopback round trip.
        pull_sub=PullSub(batch_size=1, timeout=FETCH_TIMEOUT_S),
        inbox_prefix=f"{inbox_prefix}.".encode(),
        max_workers=1 if spec.ordered else spec.workers,
        ack_policy=AckPolicy.MANUAL,
        decoder=_raw_message,
        title=spec.durable,
        description=handler.__doc__ or "",
    )
    async def consume(raw: Msg) -> None:
        await process(bus(), spec, raw, handler, faults)


def _delivery(spec: ConsumerSpec, msg: Msg) -> Delivery:
    meta = msg.metadata
    return Delivery(
        stream=meta.stream,
        subject=msg.subject,
        stream_seq=meta.sequence.stream,
        deliveries=meta.num_delivered,
        consumer=spec.durable,
    )


async def process_batch(
    bus: EventBus,
    spec: ConsumerSpec,
    msgs: list[Msg],
    handler: BatchHandler,
    faults: FaultBoard | None = None,
) -> None:
    """One handler call for many messages, e.g. one SQL transaction (one fsync) for all.

    Failures are retried here, in place, with the messages marked in progress: naking
    them would let later messages overtake. After ``max_attempts`` the batch is split
    and handled message by message, so only a poison message is dead-lettered.

    A message can come twice in one fetch (the subscription still held deliveries of the
    durable from before it was created again at a checkpoint): it is handed over once,
    in stream order, because a projection's checkpoint only skips what an earlier
    transaction applied.
    """
    items: list[tuple[Event, Delivery, Msg]] = []
    seen: set[int] = set()
    for msg in sorted(msgs, key=lambda m: m.metadata.sequence.stream):
        delivery = _delivery(spec, msg)
        if delivery.stream_seq in seen:
            continue  # acked below with the rest
        seen.add(delivery.stream_seq)
        try:
            items.append((decode_event(msg.data), delivery, msg))
        except UndecodableEvent as exc:
            await dead_letter(bus, spec, msg, delivery.deliveries, delivery.stream_seq, str(exc))
    attempt = 0
    while items:
        attempt += 1
        started = time.perf_counter()
        try:
            await handler([(event, delivery) for event, delivery, _ in items])
            if faults is not None:
                faults.clear(spec.durable)
            CONSUMER_SECONDS.observe(time.perf_counter() - started, consumer=spec.durable)
            CONSUMER_MESSAGES.inc(len(items), consumer=spec.durable, outcome="ok")
            break
        except Exception as exc:
            CONSUMER_SECONDS.observe(time.perf_counter() - started, consumer=spec.durable)
            CONSUMER_MESSAGES.inc(len(items), consumer=spec.durable, outcome="failed")
            cause = environmental_cause(exc)
            if cause is not None:
                # not the messages' fault: retried in place until it is mended
                _report(faults, spec, cause, items[0][1].stream_seq)
                attempt = min(attempt, spec.max_attempts - 1)
                for _, _, msg in items:
                    await msg.in_progress()
                await asyncio.sleep(min(spec.delay_for(attempt), ENVIRONMENT_RETRY_MAX_S))
                continue
            if attempt >= spec.max_attempts or isinstance(exc, UndecodableEvent):
                # a message found malformed while handled will not mend: only it goes
                await _one_by_one(bus, spec, items, handler)
                break
            delay = spec.delay_for(attempt)
            log.warning(
                "batch handler failed; retrying",
                extra={
                    "consumer": spec.durable,
                    "first_seq": items[0][1].stream_seq,
                    "messages": len(items),
                    "attempt": attempt,
                    "delay_s": delay,
                    "error": repr(exc)[:300],
                },
                exc_info=attempt == 1,
            )
            for _, _, msg in items:
                await msg.in_progress()
            await asyncio.sleep(delay)
    for msg in msgs:
        await msg.ack()


async def _one_by_one(
    bus: EventBus,
    spec: ConsumerSpec,
    items: list[tuple[Event, Delivery, Msg]],
    handler: BatchHandler,
) -> None:
    for event, delivery, msg in items:
        try:
            await handler([(event, delivery)])
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            await dead_letter(bus, spec, msg, delivery.deliveries, delivery.stream_seq, error)


async def resume_at_checkpoint(js: JetStreamContext, spec: ConsumerSpec, checkpoint: int) -> None:
    """Make the durable deliver what comes after ``checkpoint``, in stream order.

    After a crash the messages the dead process held stay unacknowledged until their
    ack wait runs out, and meanwhile the server hands later ones to the new process:
    a projection would apply those, advance its checkpoint, and then skip the late
    ones as already applied. A durable that is not exactly at the projection's
    checkpoint is therefore created again there (the checkpoint, kept in the same
    transaction as the data, is the truth).
    """
    info = await _consumer_info(js, spec)
    if info is None:
        await _create_at(js, spec, checkpoint + 1)
        return
    floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
    if info.num_ack_pending or floor != checkpoint:
        await _recreate_at(js, spec, checkpoint + 1, floor, info.num_ack_pending or 0)


async def release_held(js: JetStreamContext, spec: ConsumerSpec) -> None:
    """Hand an ordered durable's one in-flight message over now, not after the ack wait.

    A process that died holding it leaves it unacknowledged for ``ack_wait_s``, and an
    ordered durable delivers nothing else meanwhile: paging would stall for that long
    after a crash. Created again at that message, the durable delivers it at once;
    handlers are idempotent, so a message the dead process had acted on changes nothing.
    """
    info = await _consumer_info(js, spec)
    if info is None or not info.num_ack_pending:
        return
    floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
    await _recreate_at(js, spec, floor + 1, floor, info.num_ack_pending)


async def _consumer_info(js: JetStreamContext, spec: ConsumerSpec) -> ConsumerInfo | None:
    try:
        return await js.consumer_info(spec.stream.name, spec.durable)
    except NotFoundError:
        return None


async def _recreate_at(
    js: JetStreamContext, spec: ConsumerSpec, next_seq: int, floor: int, held: int
) -> None:
    log.info(
        "consumer created again",
        extra={"consumer": spec.durable, "next_seq": next_seq, "ack_floor": floor, "held": held},
    )
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(spec.stream.name, spec.durable)
    await _create_at(js, spec, next_seq)


async def _create_at(js: JetStreamContext, spec: ConsumerSpec, next_seq: int) -> None:
    config = spec.consumer_config()
    if next_seq > 1:
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = next_seq
    await js.add_consumer(spec.stream.name, config)


async def _pull_subscription(js: JetStreamContext, spec: ConsumerSpec) -> Any:
    return await js.pull_subscribe(
        spec.filter_subject,
        durable=spec.durable,
        stream=spec.stream.name,
        config=spec.consumer_config(),
    )


async def _fetch_available(subscription: Any, batch: int) -> list[Msg]:
    """Wait for one message, then take at once what the durable says is pending behind it.

    A multi-message fetch that waits (nats-py's) may leave a pull request on the server
    that outlives it; the next fetch is then held until that request expires (up to
    FETCH_TIMEOUT_S for a lone event). Waiting only ever for one message, and then asking
    for no more than the server has, never waits for a batch to fill.
    """
    msgs: list[Msg] = await subscription.fetch(1, timeout=FETCH_TIMEOUT_S)
    pending = msgs[-1].metadata.num_pending or 0
    if batch > 1 and pending > 0:
        with contextlib.suppress(TimeoutError, nats.errors.TimeoutError):
            msgs += await subscription.fetch(min(batch - 1, pending), timeout=FETCH_TIMEOUT_S)
    return msgs


async def consume_batches_forever(
    bus: Callable[[], EventBus],
    spec: ConsumerSpec,
    handler: BatchHandler,
    checkpoint: Checkpoint | None = None,
    faults: FaultBoard | None = None,
    subscribed: asyncio.Event | None = None,
) -> None:
    """A durable pull loop handing over whatever has arrived, up to ``spec.batch`` at once.

    Batches grow with the backlog and a lone message is not held back
    (``_fetch_available``). With ``checkpoint``
    (the last stream sequence the handler has applied) the durable resumes right
    after it, in order, whatever a crashed predecessor left unacknowledged, and
    again after every reconnect: a nats-server killed and restarted may recover a
    consumer state older than what it had delivered (that state is written
    asynchronously), and would redeliver the difference only after the ack wait,
    behind later messages.
    """
    js = bus().js
    nc = bus().nc
    reconnects = nc.stats["reconnects"]
    if checkpoint is not None:
        await resume_at_checkpoint(js, spec, await checkpoint())
    subscription = await _pull_subscription(js, spec)
    if subscribed is not None:
        subscribed.set()
    try:
        while True:
            if checkpoint is not None and nc.stats["reconnects"] != reconnects and nc.is_connected:
                reconnects = nc.stats["reconnects"]
                await resume_at_checkpoint(js, spec, await checkpoint())
                # messages the old durable delivered may still wait in the old
                # subscription; one with a later sequence, applied first, would move the
                # checkpoint past the ones the recreated durable is about to send
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()
                subscription = await _pull_subscription(js, spec)
            try:
                msgs = await _fetch_available(subscription, spec.batch)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError):
                await asyncio.sleep(0.5)
                continue
            await process_batch(bus(), spec, msgs, handler, faults)
    finally:
        # nats-py's fetch takes queued messages without marking them done, so a
        # subscription left behind would hold the connection's drain until its timeout.
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
