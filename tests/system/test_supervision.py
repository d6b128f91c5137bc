"""Faults under ``vigil up``: nats-server or the supervisor killed hard, a second
supervisor on the same data dir, a leftover nats-server, a full disk."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from shared.natsserver import EmbeddedNats
from shared.services import SERVICES
from tests.system.conftest import (
    VigilProcess,
    WebhookReceiver,
    fill_disk,
    shut_down,
    start_vigil,
)
from tests.system.test_end_to_end import _items, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PAGING_FLOOR_S = 10.0  # after nats-server dies, a new critical sample pages within this


def _critical(host: str) -> dict[str, Any]:
    return {"name": "checkout_latency_ms", "value": 5000.0, "labels": {"host": host}}


async def _post_batches(client: httpx.AsyncClient, batches: int, size: int, tag: str) -> int:
    """Post ``batches`` batches of ordinary samples; returns how many samples were acknowledged."""
    acked = 0
    for n in range(batches):
        batch = [
            {"name": "queue_depth", "value": float(i), "labels": {"batch": f"{tag}-{n}"}}
            for i in range(size)
        ]
        response = await client.post("/api/monitoring/metrics", json=batch)
        assert response.status_code == 202, response.text
        acked += size
    return acked


async def _post_until_accepted(
    client: httpx.AsyncClient, samples: list[dict[str, Any]], within_s: float = 60.0
) -> None:
    deadline = time.monotonic() + within_s
    while True:
        with contextlib.suppress(httpx.HTTPError):
            response = await client.post("/api/monitoring/metrics", json=samples)
            if response.status_code == 202:
                return
        if time.monotonic() > deadline:
            raise AssertionError("samples never accepted")
        await asyncio.sleep(0.1)


async def _stored(client: httpx.AsyncClient, expected: int) -> int:
    response = await eventually(
        lambda: client.get("/api/monitoring/metrics/stats"),
        lambda r: r.status_code == 200 and r.json()["stored_samples"] >= expected,
        timeout=60,
    )
    return int(response.json()["stored_samples"])


async def _all_up_since(client: httpx.AsyncClient, since: datetime) -> None:
    """Every service's heartbeat arrived after ``since``."""

    def fresh(r: httpx.Response) -> bool:
        services = r.json()["services"] if r.status_code == 200 else {}
        return set(services) == set(SERVICES) and all(
            s["status"] == "up" and datetime.fromisoformat(s["last_seen"]) > since
            for s in services.values()
        )

    await eventually(lambda: client.get("/api/monitoring/health/system"), fresh, timeout=30)


def _fired(receiver: WebhookReceiver, host: str) -> list[dict[str, Any]]:
    """AlertFired pages for ``host`` (Vigil's own alerts may page as well)."""
    return [p for p in receiver.of_type("AlertFired") if p["alert"]["labels"].get("host") == host]


def _nats_process(vigil: VigilProcess) -> psutil.Process:
    pid = int((vigil.data_dir / "nats" / "nats-server.pid").read_text())
    nats = psutil.Process(pid)
    assert nats in vigil.tree() and nats.name() == "nats-server"
    return nats


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_nats_server_killed_is_restarted_and_every_consumer_resumes(
    vigil_up: VigilProcess, webhook_receiver: WebhookReceiver
) -> None:
    async with vigil_up.client() as client:
        await _all_up_since(client, datetime(2000, 1, 1, tzinfo=UTC))
        acked = await _post_batches(client, batches=20, size=50, tag="before")
        services = {name: vigil_up.service_pid(name) for name in SERVICES}
        nats = _nats_process(vigil_up)

        killed_at = datetime.now(UTC)
        started = time.monotonic()
        nats.kill()
        await _post_until_accepted(client, [_critical("after-kill")])
        acked += 1
        await webhook_receiver.wait_for(lambda: _fired(webhook_receiver, "after-kill"), timeout=60)
        paged_after_s = time.monotonic() - started
        alert_id = _fired(webhook_receiver, "after-kill")[0]["alert"]["id"]
        print(f"paging again {paged_after_s:.2f}s after nats-server was killed")

        # what every kind of consumer serves, after the restart
        assert await _stored(client, acked) == acked  # metrics-store (batched)
        samples = await client.get(
            "/api/monitoring/metrics", params={"name": "checkout_latency_ms"}
        )  # request/reply to metrics
        assert [s["labels"]["host"] for s in _items(samples.json(), "samples")] == ["after-kill"]
        incidents = await eventually(  # incidents-from-alerts, gateway projections (batched)
            lambda: client.get("/api/monitoring/incidents"),
            lambda r: [i for i in _items(r.json(), "incidents") if i["alert_id"] == alert_id],
        )
        [incident_id] = [
            i["id"] for i in _items(incidents.json(), "incidents") if i["alert_id"] == alert_id
        ]
        await webhook_receiver.wait_for(
            lambda: any(
                p["incident"]["id"] == incident_id
                for p in webhook_receiver.of_type("IncidentOpened")
            )
        )
        changed = await client.put(  # request/reply to incidents
            f"/api/monitoring/incidents/{incident_id}/status", json={"status": "identified"}
        )
        assert changed.status_code == 200, changed.text
        await eventually(
            lambda: client.get(f"/api/monitoring/incidents/{incident_id}"),
            lambda r: r.json()["status"] == "identified",
        )
        await _all_up_since(client, killed_at)  # heartbeats

    vigil_up.wait_for_line("vigil nats exited with -9")
    vigil_up.wait_for_line("vigil nats restarted")
    ready = next(line for line in vigil_up.lines if line.startswith("vigil nats ready"))
    restarted = next(line for line in vigil_up.lines if line.startswith("vigil nats restarted"))
    assert ready.split()[-1] == restarted.split()[-1]  # the same URL: the same port
    assert _nats_process(vigil_up).pid != nats.pid
    # the services reconnected by themselves: none was restarted
    assert {name: vigil_up.service_pid(name) for name in SERVICES} == services
    assert paged_after_s <= PAGING_FLOOR_S


async def test_killed_supervisor_takes_its_tree_and_the_data_dir_starts_again(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    vigil = start_vigil(tmp_path, webhook_receiver, {})
    again: VigilProcess | None = None
    try:
        async with vigil.client() as client:
            acked = await _post_batches(client, batches=50, size=20, tag="first")
        tree = vigil.tree()
        assert _nats_process(vigil) in tree and len(tree) >= 8

        started = time.monotonic()
        vigil.process.kill()
        vigil.process.wait()
        deadline = time.monotonic() + 15
        while not all(_gone(p) for p in tree) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        tree_gone_s = time.monotonic() - started
        assert [p for p in tree if not _gone(p)] == []

        again = await asyncio.to_thread(start_vigil, tmp_path, webhook_receiver, {})
        up_again_s = time.monotonic() - started
        print(f"tree gone {tree_gone_s:.2f}s, up again {up_again_s:.2f}s after SIGKILL")
        async with again.client() as client:
            assert await _stored(client, acked) == acked
            await _post_until_accepted(client, [_critical("after-restart")])
        await webhook_receiver.wait_for(lambda: _fired(webhook_receiver, "after-restart"))
    finally:
        shut_down(vigil)
        if again is not None:
            shut_down(again)


async def test_a_second_vigil_up_on_the_same_data_dir_refuses(
    vigil_up: VigilProcess, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    second = await asyncio.to_thread(
        subprocess.run,
        [
            *(sys.executable, "-m", "services.cli", "up", "--no-agent", "--port", "1"),
            *("--data-dir", str(vigil_up.data_dir), "--config", str(tmp_path / "vigil.yaml")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert second.returncode == 2
    assert second.stdout == ""
    [line] = second.stderr.splitlines()
    assert str(vigil_up.data_dir) in line and "in use" in line
    assert f"pid {vigil_up.process.pid}" in line and vigil_up.url in line
    async with vigil_up.client() as client:  # the running one is untouched
        assert (await client.get("/health")).status_code == 200


async def test_a_leftover_nats_server_of_the_data_dir_is_stopped_first(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    leftover = EmbeddedNats(tmp_path / "data" / "nats").start()  # as if orphaned
    vigil = start_vigil(tmp_path, webhook_receiver, {})
    try:
        vigil.wait_for_line(f"vigil stopped a leftover nats-server (pid {leftover.process.pid})")
        assert leftover.process is not None and leftover.process.wait(5) is not None
        assert _nats_process(vigil).pid != leftover.process.pid
        async with vigil.client() as client:
            await _post_until_accepted(client, [_critical("after-leftover")])
        await webhook_receiver.wait_for(lambda: _fired(webhook_receiver, "after-leftover"))
    finally:
        shut_down(vigil)
        leftover.stop()


async def test_store_failing_on_a_full_disk_is_restarted_once_there_is_room(
    small_disk: Path, tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    vigil = start_vigil(tmp_path, webhook_receiver, {})
    try:
        async with vigil.client() as client:
            acked = await _post_batches(client, batches=10, size=50, tag="before")
            await _stored(client, acked)
            ballast = await asyncio.to_thread(fill_disk, small_disk)
            # writes fail now; keep trying until the server reports its store failing
            deadline = time.monotonic() + 60
            while not any("JetStream is failing" in line for line in vigil.lines):
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.post(
                        "/api/monitoring/metrics", json=[_critical("while-full")], timeout=30
                    )
                    acked += 1 if response.status_code == 202 else 0
                assert time.monotonic() < deadline, vigil.lines
                await asyncio.sleep(0.2)
            assert not any("vigil nats restarted" in line for line in vigil.lines)
            await asyncio.sleep(2.0)  # still full: no restart yet
            assert not any("vigil nats restarted" in line for line in vigil.lines)

            ballast.unlink()
            freed = time.monotonic()
            vigil.wait_for_line("vigil nats restarted", timeout=30)
            await _post_until_accepted(client, [_critical("after-room")])
            print(f"ingest again {time.monotonic() - freed:.2f}s after space was freed")
            acked += 1
            acked += await _post_batches(client, batches=10, size=50, tag="after")
            # a batch answered 503 while the disk was full may still have been stored
            assert await _stored(client, acked) >= acked
            ordinary = await eventually(
                lambda: client.get(
                    "/api/monitoring/metrics", params={"name": "queue_depth", "limit": 5000}
                ),
                lambda r: len(_items(r.json(), "samples")) >= 1000,
            )
            assert len(_items(ordinary.json(), "samples")) == 1000  # all of them, once
        await webhook_receiver.wait_for(lambda: _fired(webhook_receiver, "after-room"), timeout=60)
    finally:
        shut_down(vigil)
