"""System health as JetStream sees it: every stream's size and every durable's lag."""

from __future__ import annotations

import asyncio

from services.gateway.schemas import ConsumerHealthPublic, StreamHealthPublic
from shared.bus import EventBus
from shared.streams import ALL_STREAMS


async def stream_health(
    bus: EventBus,
) -> tuple[list[StreamHealthPublic], list[ConsumerHealthPublic]]:
    names = [spec.name for spec in ALL_STREAMS]
    infos = await asyncio.gather(*(bus.js.stream_info(name) for name in names))
    consumer_lists = await asyncio.gather(*(bus.js.consumers_info(name) for name in names))
    streams = [
        StreamHealthPublic(
            name=name,
            messages=info.state.messages,
            bytes=info.state.bytes,
            first_seq=info.state.first_seq,
            last_seq=info.state.last_seq,
        )
        for name, info in zip(names, infos, strict=True)
    ]
    consumers: list[ConsumerHealthPublic] = []
    for name, found in zip(names, consumer_lists, strict=True):
        for consumer in found:
            durable = consumer.config.durable_name
            if not durable:
                continue  # ephemeral readers (replays) are not part of the system
            pending = consumer.num_pending or 0
            ack_pending = consumer.num_ack_pending or 0
            consumers.append(
                ConsumerHealthPublic(
                    stream=name,
                    durable=durable,
                    pending=pending,
                    ack_pending=ack_pending,
                    redelivered=consumer.num_redelivered or 0,
                    ack_floor=(consumer.ack_floor.stream_seq if consumer.ack_floor else 0) or 0,
                    lag=pending + ack_pending,
                )
            )
    consumers.sort(key=lambda c: (c.stream, c.durable))
    return streams, consumers
