"""Liveness: each service announces itself on core NATS; the gateway listens.

A beat also carries what the service knows is wrong with it (faults), the state of
the disk under its data dir, and any figures it adds (``status``), so health can name
a cause and not only say "down". Core NATS, not JetStream: a beat must get through
when the event log refuses writes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import orjson
from nats.aio.client import Client

from shared import subjects

StatusReport = Callable[[], dict[str, Any]]


def heartbeat_payload(
    service: str, started_at: float, status: dict[str, Any] | None = None
) -> bytes:
    return orjson.dumps(
        {
            **(status or {}),
            "service": service,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "time": time.time(),
            "started_at": started_at,
        }
    )


async def beat_forever(
    nc: Client, service: str, interval_s: float, status: StatusReport | None = None
) -> None:
    started_at = time.time()
    while True:
        if nc.is_connected:
            body = heartbeat_payload(service, started_at, status() if status else None)
            await nc.publish(subjects.heartbeat(service), body)
        await asyncio.sleep(interval_s)
