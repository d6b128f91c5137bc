"""SIGKILL services mid-stream: when the dust settles, nothing is lost and nothing is doubled."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from typing import Any

import pytest

from services.notifier.lanes import MAX_IN_FLIGHT
from tests.system.conftest import VigilProcess, WebhookReceiver
from tests.system.test_end_to_end import _items, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

VICTIMS = ("alerts", "incidents", "notifier", "gateway", "metrics")
HOSTS = 30


async def _post(vigil: VigilProcess, samples: list[dict[str, Any]]) -> None:
    """Post until accepted: the gateway itself may be down for a moment."""
    deadline = time.monotonic() + 60
    while True:
        try:
            async with vigil.client() as client:
                response = await client.post(
                    "/api/monitoring/metrics",
                    json=samples,
                    headers={"Idempotency-Key": f"batch-{samples[0]['labels']['host']}"},
                )
            if response.status_code == 202:
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("gateway never came back")
        await asyncio.sleep(0.2)


async def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    vigil_up: VigilProcess, webhook_receiver: WebhookReceiver
) -> None:
    async def killer() -> None:
        for round_ in range(len(VICTIMS) * 2):
            await asyncio.sleep(0.4)
            victim = VICTIMS[round_ % len(VICTIMS)]
            with contextlib.suppress(LookupError, ProcessLookupError):
                os.kill(vigil_up.service_pid(victim), signal.SIGKILL)

    async def load() -> None:
        for n in range(HOSTS):
            sample = {"name": "checkout_latency_ms", "value": 5000.0, "labels": {"host": f"h{n}"}}
            await _post(vigil_up, [sample])
            await asyncio.sleep(0.1)

    await asyncio.gather(killer(), load())

    await webhook_receiver.wait_for(
        lambda: (
            len({p["alert"]["id"] for p in webhook_receiver.of_type("AlertFired")}) >= HOSTS
            and len({p["incident"]["id"] for p in webhook_receiver.of_type("IncidentOpened")})
            >= HOSTS
        ),
        timeout=120,
    )
    async with vigil_up.client() as client:
        alerts = await eventually(
            lambda: client.get("/api/monitoring/alerts", params={"limit": 1000}),
            lambda r: r.status_code == 200 and len(_items(r.json(), "alerts")) >= HOSTS,
            timeout=60,
        )
        incidents = await eventually(
            lambda: client.get("/api/monitoring/incidents", params={"limit": 1000}),
            lambda r: r.status_code == 200 and len(_items(r.json(), "incidents")) >= HOSTS,
            timeout=60,
        )
        stored = await eventually(
            lambda: client.get(
                "/api/monitoring/metrics", params={"name": "checkout_latency_ms", "limit": 1000}
            ),
            lambda r: r.status_code == 200 and len(_items(r.json(), "samples")) >= HOSTS,
            timeout=60,
        )
        await asyncio.sleep(2.0)  # let any late duplicate surface before counting
        alerts = await client.get("/api/monitoring/alerts", params={"limit": 1000})
        incidents = await client.get("/api/monitoring/incidents", params={"limit": 1000})

    hosts = Counter(a["labels"]["host"] for a in _items(alerts.json(), "alerts"))
    assert len(hosts) == HOSTS and set(hosts.values()) == {1}
    assert len(_items(incidents.json(), "incidents")) == HOSTS
    assert len(_items(stored.json(), "samples")) == HOSTS
    pages = Counter(h["X-Vigil-Delivery"] for h in webhook_receiver.headers)
    assert len({p["alert"]["id"] for p in webhook_receiver.of_type("AlertFired")}) == HOSTS
    assert len({p["incident"]["id"] for p in webhook_receiver.of_type("IncidentOpened")}) == HOSTS
    # a page can only repeat if the notifier died between the receiver's answer and the
    # ledger write: at most the messages a lane had on the wire when it died; receivers
    # dedupe on X-Vigil-Delivery
    notifier_deaths = 2 * VICTIMS.count("notifier")
    assert sum(pages.values()) - len(pages) <= MAX_IN_FLIGHT * notifier_deaths
