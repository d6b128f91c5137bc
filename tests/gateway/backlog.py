"""A gateway watching a METRICS durable that is some batches behind, for backpressure tests."""

from __future__ import annotations

import time

from nats.js.api import AckPolicy, ConsumerConfig

from services.gateway.app import Gateway, build_gateway
from shared import subjects
from shared.bus import EventBus
from shared.events import SamplesIngested
from shared.heartbeat import heartbeat_payload
from shared.natsserver import free_port
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.waiting import eventually


async def gateway_behind(
    settings: Settings, start_service: RuntimeFactory, max_backlog: int
) -> Gateway:
    """A running gateway that refuses ingest past ``max_backlog`` batches."""
    tuned = settings.model_copy(
        update={
            "port": free_port(),
            "ingest_max_backlog": max_backlog,
            "heartbeat_interval_s": 30.0,
        }
    )
    gateway = build_gateway(tuned)
    await start_service(gateway.runtime)
    return gateway


async def fall_behind(bus: EventBus, gateway: Gateway, durable: str, batches: int) -> None:
    """``durable`` exists on METRICS but nothing reads it: ``batches`` behind, as seen."""
    await bus.js.add_consumer(
        "METRICS",
        ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            filter_subject=f"{subjects.SAMPLES}.>",
        ),
    )
    for _ in range(batches):
        await bus.publish(
            subjects.samples("test"),
            SamplesIngested(aggregate_id="test", samples=[], received_at=time.time()),
        )
    ingest = gateway.state.ingest  # its backlog is replaced on every poll: read it each time
    await eventually(
        lambda: ingest.backlog.get(durable) == batches, what=f"{durable}'s backlog seen"
    )


async def metrics_running(bus: EventBus, gateway: Gateway) -> None:
    """The metrics service's heartbeat, as the gateway sees it: its durables are running."""
    await bus.nc.publish(subjects.heartbeat("metrics"), heartbeat_payload("metrics", time.time()))
    await eventually(
        lambda: any(
            s.up for s in gateway.state.liveness.status(time.time()) if s.service == "metrics"
        ),
        what="the metrics heartbeat",
    )
