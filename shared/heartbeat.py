"""Liveness: each service announces itself on core NATS; the gateway listens.

A beat also carries what the service knows is wrong with it (faults), the state of
the disk under its data dir, whether its database answers, and any figures it adds
(``status``), so health can name a cause and not only say "down". Core NATS, not
JetStream: a beat must get through when the event log refuses writes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import orjson
from nats.aio.client import Client
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

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


DB_PROBE_TIMEOUT_S = 2.0


class StoreProbe(ABC):
    """Whether a service's store answers, checked on a timer and told in heartbeats
    (``database: {ok, detail}``), so health can name a store that stopped answering."""

    def __init__(self) -> None:
        self.ok: bool | None = None
        self.detail = "not checked yet"

    @abstractmethod
    async def ping(self) -> None:
        """One round trip to the store."""

    async def check(self) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(DB_PROBE_TIMEOUT_S):
                await self.ping()
        except TimeoutError:
            self.ok, self.detail = False, f"no answer within {DB_PROBE_TIMEOUT_S:g} s"
        except Exception as exc:  # what the driver says; no query text, no credentials
            self.ok, self.detail = False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        else:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.ok, self.detail = True, f"answered in {elapsed_ms:.1f} ms"

    async def watch(self, interval_s: float) -> None:
        while True:
            await self.check()
            await asyncio.sleep(interval_s)

    def report(self) -> dict[str, Any]:
        if self.ok is None:
            return {}
        return {"database": {"ok": self.ok, "detail": self.detail}}


class DatabaseProbe(StoreProbe):
    """The probe of a SQL database (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine):
        super().__init__()
        self.engine = engine

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
