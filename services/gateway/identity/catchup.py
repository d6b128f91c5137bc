"""Reading a stream from a given sequence to its end: how the identity cache catches up
with writes it has not seen (another gateway's, the CLI's, or those of a gap)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared.bus import EventBus
from shared.events import Event, UndecodableEvent, decode_event


async def last_seq(bus: EventBus, stream: str) -> int:
    return int((await bus.js.stream_info(stream)).state.last_seq)


async def read_from(
    bus: EventBus, stream: str, start_seq: int, end_seq: int, batch: int = 256
) -> AsyncIterator[tuple[int, Event | None]]:
    """Events stored at ``start_seq`` through ``end_seq``, in order, with their sequence
    (None for a message that cannot be decoded: it still takes its place)."""
    if end_seq < start_seq:
        return
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=max(1, start_seq),
        ack_policy=AckPolicy.NONE,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    sub = await bus.js.pull_subscribe("", stream=stream, config=config)
    try:
        while True:
            try:
                msgs = await sub.fetch(batch, timeout=1.0)
            except (NatsTimeout, TimeoutError):  # nats-py raises both
                return
            for msg in msgs:
                meta = msg.metadata
                seq = meta.sequence.stream
                if seq > end_seq:
                    return
                try:
                    event: Event | None = decode_event(msg.data)
                except UndecodableEvent:
                    event = None
                yield seq, event
                if seq >= end_seq or meta.num_pending == 0:
                    return
    finally:
        await sub.unsubscribe()
