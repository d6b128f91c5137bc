"""A full or read-only disk at run time, on a real tmpfs under the whole system: writes are
refused at once with the cause, health says why, a low disk pages before it is full, and
everything resumes when the disk is mended, with nothing acknowledged lost."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.system.conftest import (
    SMALL_DISK_MB,
    VigilProcess,
    WebhookReceiver,
    fill_disk,
    shut_down,
    start_vigil,
)
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

FAST_HEALTH = {
    "VIGIL_WATCHDOG_INTERVAL_S": "0.3",
    "VIGIL_HEARTBEAT_INTERVAL_S": "0.5",
    "VIGIL_STALL_AFTER_S": "5",
}


@pytest.fixture
def vigil_on_small_disk(
    small_disk: Path, tmp_path: Path, webhook_receiver: WebhookReceiver
) -> Iterator[VigilProcess]:
    vigil = start_vigil(tmp_path, webhook_receiver, FAST_HEALTH)
    assert vigil.data_dir == small_disk
    try:
        yield vigil
    finally:
        shut_down(vigil)


def sample(host: str, value: float = 10.0) -> dict[str, Any]:
    return {"name": "checkout_latency_ms", "value": value, "labels": {"host": host}}


async def post_batches(
    client: httpx.AsyncClient, count: int, tag: str, retry_s: float = 0.0
) -> int:
    """Post ``count`` batches, each 202. Within ``retry_s`` a 503 is sent again with the
    same Idempotency-Key, as the answer says to: just after space returns the broker may
    still be restarting (the supervisor restarts a JetStream that refused writes)."""
    accepted = 0
    for i in range(count):
        batch = [sample(f"{tag}-{i}-{j}") for j in range(20)]
        headers = {"Idempotency-Key": f"{tag}-{i}"}
        deadline = time.monotonic() + retry_s
        while True:
            response = await client.post("/api/monitoring/metrics", json=batch, headers=headers)
            if response.status_code != 503 or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.2)
        assert response.status_code == 202, response.text
        accepted += len(batch)
    return accepted


async def stored(client: httpx.AsyncClient) -> int:
    """Samples the store holds; -1 while it cannot answer (the metrics service is still
    coming back from the fault: a 502/503 names it)."""
    response = await client.get(
        "/api/monitoring/metrics", params={"name": "checkout_latency_ms", "limit": 100_000}
    )
    if response.status_code in (502, 503):
        return -1
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body["truncated"]
    return len(body["samples"])


async def wait_refused(client: httpx.AsyncClient, cause: str) -> dict[str, Any]:
    async def refused() -> dict[str, Any] | None:
        response = await client.get("/ready")
        body = dict(response.json())
        return body if response.status_code == 503 and cause in (body["reason"] or "") else None

    return dict(await eventually(refused, within_s=20, what=f"writes refused for {cause}"))


async def refused_at_once(client: httpx.AsyncClient, cause: str) -> None:
    """Every kind of write answers 503 within a second, naming the cause."""
    for method, path, body in (
        ("POST", "/api/monitoring/metrics", [sample("while-broken", 5000)]),
        ("POST", "/api/monitoring/incidents", {"title": "disk", "severity": "critical"}),
    ):
        began = time.monotonic()
        response = await client.request(method, path, json=body)
        took = time.monotonic() - began
        assert response.status_code == 503, response.text
        assert cause in response.json()["detail"]
        assert took <= 1.0, f"{path} took {took:.2f}s"


async def accepted_again(client: httpx.AsyncClient, within_s: float = 60) -> float:
    began = time.monotonic()

    async def accepted() -> bool:
        response = await client.post("/api/monitoring/metrics", json=[sample("after", 5000)])
        return response.status_code == 202

    await eventually(accepted, within_s=within_s, what="writes accepted again", every_s=0.2)
    return time.monotonic() - began


async def all_stored(client: httpx.AsyncClient, accepted: int) -> None:
    async def done() -> bool:
        return await stored(client) == accepted

    await eventually(done, within_s=60, what=f"{accepted} samples stored", every_s=0.5)


async def ready_again(client: httpx.AsyncClient) -> None:
    async def ready() -> bool:
        return (await client.get("/ready")).status_code == 200

    await eventually(ready, within_s=20, what="ready again", every_s=0.2)


async def test_a_full_disk_is_said_loudly_refused_at_once_and_survived(
    vigil_on_small_disk: VigilProcess, small_disk: Path, webhook_receiver: WebhookReceiver
) -> None:
    async with vigil_on_small_disk.client() as client:
        accepted = await post_batches(client, 10, "before")
        await all_stored(client, accepted)

        # nearly full: Vigil pages about its own disk while it still can
        nearly = await asyncio.to_thread(
            fill_disk, small_disk, int(SMALL_DISK_MB * 0.06 * 1024 * 1024)
        )

        def disk_low_paged() -> bool:
            return any(
                p["alert"]["rule"] == "VigilDiskLow" for p in webhook_receiver.of_type("AlertFired")
            )

        await webhook_receiver.wait_for(disk_low_paged, timeout=30)
        health = (await client.get("/health")).json()
        assert any("nearly full" in p["reason"] for p in health["problems"]), health

        full = await asyncio.to_thread(fill_disk, small_disk)
        ready = await wait_refused(client, "full")
        assert ready["status"] == "failing"
        await refused_at_once(client, "full")
        health_response = await client.get("/health")
        assert health_response.status_code == 503
        assert any(p["component"].startswith("disk:") for p in health_response.json()["problems"])

        full.unlink()
        nearly.unlink()
        print(f"writes accepted again {await accepted_again(client):.1f}s after space returned")
        accepted += 1 + await post_batches(client, 10, "after", retry_s=30)
        await all_stored(client, accepted)
        await ready_again(client)
        await webhook_receiver.wait_for(
            lambda: any(
                p["alert"]["labels"].get("host") == "after"
                for p in webhook_receiver.of_type("AlertFired")
            ),
            timeout=30,
        )


def mount_read_only(directory: Path) -> None:
    """A read-only bind mount over the data dir. The kernel will not remount a file
    system read-only under open writers (a disk that fails does so by itself); the bind
    mount makes everything opened from now on read-only, as the path is seen."""
    subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], check=True)


async def test_a_read_only_data_dir_is_said_loudly_and_survived(
    vigil_on_small_disk: VigilProcess, small_disk: Path
) -> None:
    async with vigil_on_small_disk.client() as client:
        accepted = await post_batches(client, 5, "before")
        await asyncio.to_thread(mount_read_only, small_disk)
        try:
            await wait_refused(client, "read-only")
            await refused_at_once(client, "read-only")
        finally:
            await asyncio.to_thread(subprocess.run, ["umount", str(small_disk)], check=True)
        await accepted_again(client)
        accepted += 1 + await post_batches(client, 5, "after", retry_s=30)
        await all_stored(client, accepted)
