"""Liveness: each service announces itself on core NATS; the gateway listens."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import orjson
from nats.aio.client import Client

from shared import subjects


def heartbeat_payload(service: str, started_at: float) -> bytes:
    return orjson.dumps(
        {
            "service": service,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "time": time.time(),
            "started_at": started_at,
        }
    )


async def beat_forever(nc: Client, service: str, interval_s: float) -> None:
    started_at = time.time()
    while True:
        if nc.is_connected:
            await nc.publish(subjects.heartbeat(service), heartbeat_payload(service, started_at))
        await asyncio.sleep(interval_s)
