"""NATS permissions for logs: every service may store its own log lines (source self),
the gateway its OTLP lines and a live tail of LOGS; the agent none of these."""

from __future__ import annotations

import asyncio
import time

import pytest
from nats.errors import TimeoutError as NatsTimeout

from services.gateway.logs.tail import LogTails
from shared import subjects
from shared.events import LogsIngested, new_id
from shared.logmatch import LineFilter
from tests.test_natsauth import Session, refused_publish, secured, sessions

__all__ = ["secured", "sessions"]  # fixtures used here


def lines(source: str, message: str) -> LogsIngested:
    return LogsIngested.of_validated(
        [{"message": message, "level": "info", "service": source, "labels": {}, "fields": {}}],
        id=new_id(),
        aggregate_id=source,
        received_at=time.time(),
    )


async def test_each_service_stores_its_own_log_lines(sessions: dict[str, Session]) -> None:
    for user in ("gateway", "metrics", "alerts", "incidents", "synthetic", "notifier"):
        ack = await sessions[user].bus.js.publish(
            subjects.log_entries("self"), lines(user, "ready").encode(), timeout=5
        )
        assert ack.seq > 0, user
        assert sessions[user].violations() == [], (user, sessions[user].errors)
    ack = await sessions["gateway"].bus.js.publish(
        subjects.log_entries("otlp"), lines("otlp", "x").encode(), timeout=5
    )
    assert ack.seq > 0
    await refused_publish(sessions["agent"], subjects.log_entries("self"), lines("agent", "x"))
    await refused_publish(sessions["alerts"], subjects.log_entries("api"), lines("api", "x"))


async def test_the_gateway_tails_logs(sessions: dict[str, Session]) -> None:
    gateway = sessions["gateway"]
    tails = LogTails()
    client = await tails.join(gateway.bus, LineFilter.of(q="tailed"))
    try:
        for n in range(3):
            await gateway.bus.publish(subjects.log_entries("api"), lines("api", f"tailed {n}"))
        chunks = [await client.next(5) for _ in range(3)]
        assert [b"tailed %d" % n in (chunk or b"") for n, chunk in enumerate(chunks)] == [True] * 3
        await asyncio.sleep(0.2)
        assert gateway.violations() == [], gateway.errors
    finally:
        await tails.leave(client)
    assert tails.subscription is None


@pytest.mark.parametrize("user", ["incidents", "agent"])
async def test_services_without_the_right_cannot_tail(
    sessions: dict[str, Session], user: str
) -> None:
    # the server drops the consumer's creation: no answer comes, and it says why
    with pytest.raises((NatsTimeout, TimeoutError)):
        await asyncio.wait_for(LogTails().join(sessions[user].bus, LineFilter.of()), 2)
    assert any("consumer.create.logs" in v.lower() for v in sessions[user].violations())
