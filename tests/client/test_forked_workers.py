"""A worker forked after the client was made (gunicorn --preload) pushes on its own."""

from __future__ import annotations

import multiprocessing
import os

from vigil_client import VigilClient

from tests.client.conftest import INGEST_KEY, IngestReceiver


def _worker(client: VigilClient) -> None:
    client.record_request("/in-child", "", "GET", 200, 0.01)
    client.close()
    os._exit(0 if client.stats().sent_samples > 0 else 1)


def test_a_forked_worker_has_its_own_pusher_counters_and_instance(
    receiver: IngestReceiver,
) -> None:
    client = VigilClient(receiver.url, INGEST_KEY, flush_interval_s=3600)
    client.record_request("/in-parent", "", "GET", 200, 0.01)
    child = multiprocessing.get_context("fork").Process(target=_worker, args=(client,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    client.close()
    assert receiver.refused == []
    in_child = receiver.samples("app_requests_total")
    routes = {s["labels"]["route"]: s["labels"]["instance"] for s in in_child}
    assert routes["/in-child"].endswith(f":{child.pid}")
    assert routes["/in-parent"].endswith(f":{os.getpid()}")
    # the child started with empty counters: the parent's request is not in its batch
    child_batches = [
        b for b in receiver.batches if any(s["labels"].get("route") == "/in-child" for s in b)
    ]
    assert all(s["labels"].get("route") != "/in-parent" for b in child_batches for s in b)
