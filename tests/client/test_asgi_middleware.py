"""The ASGI middleware on a real FastAPI app served by uvicorn, pushing to a real receiver."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse
from starlette.applications import Starlette
from starlette.routing import Route
from vigil_client import VigilASGIMiddleware, VigilClient
from vigil_client.labels import OVERFLOW
from vigil_client.recorder import NOT_FOUND

from tests.client.conftest import INGEST_KEY, IngestReceiver
from tests.client.servers import http_client, uvicorn_serving


def shop_app(client: VigilClient) -> FastAPI:
    app = FastAPI()
    app.add_middleware(VigilASGIMiddleware, client=client)
    orders = APIRouter(prefix="/orders")

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    @app.get("/busy")
    async def busy() -> PlainTextResponse:
        return PlainTextResponse("later", status_code=503)

    @app.get("/slow")
    async def slow() -> str:
        await asyncio.sleep(0.3)
        return "done"

    @orders.post("/{order_id}/pay")
    async def pay(order_id: str) -> str:
        return order_id

    app.include_router(orders)

    async def inner(request: object) -> PlainTextResponse:
        return PlainTextResponse("inner")

    app.mount("/legacy", Starlette(routes=[Route("/users/{name}", inner)]))
    return app


def test_counts_errors_and_latency_per_route_template(receiver: IngestReceiver) -> None:
    client = VigilClient(receiver.url, INGEST_KEY, flush_interval_s=3600, labels={"app": "shop"})
    with uvicorn_serving(shop_app(client)) as url, http_client(url) as http:
        for item_id in (1, 2, 3):
            assert http.get(f"/items/{item_id}").status_code == 200
        assert http.get("/boom").status_code == 500
        assert http.get("/busy").status_code == 503
        assert http.get("/slow").status_code == 200
        assert http.post("/orders/a-1/pay").status_code == 200
        assert http.get("/legacy/users/ann").status_code == 200
        assert http.get("/no/such/page").status_code == 404
        assert http.post("/items/1").status_code == 405
    # uvicorn's lifespan shutdown made the middleware send what was left
    assert receiver.refused == []
    requests = "app_requests_total"
    item = {"route": "/items/{item_id}", "app": "shop"}
    assert receiver.latest(requests, **item, method="GET", status_class="2xx") == 3
    assert receiver.latest(requests, **item, method="POST", status_class="4xx") == 1
    assert receiver.latest(requests, route="/boom", status_class="5xx") == 1
    assert receiver.latest(requests, route="/orders/{order_id}/pay", method="POST") == 1
    assert receiver.latest(requests, route="/legacy/users/{name}") == 1
    assert receiver.latest(requests, route=NOT_FOUND, status_class="4xx") == 1
    assert receiver.latest("app_errors_total", route="/boom") == 1
    assert receiver.latest("app_errors_total", route="/busy") == 1
    assert receiver.latest("app_errors_total", route="/items/{item_id}") == 0
    assert receiver.latest("app_error_rate_percent", route="/boom") == 100
    assert receiver.latest("app_error_rate_percent", route="/items/{item_id}") == 0
    assert receiver.latest("app_response_time_ms", route="/slow") >= 300
    assert receiver.latest("app_request_duration_ms", route="/slow", quantile="0.99") >= 300
    assert receiver.latest("app_request_duration_ms_count", route="/items/{item_id}") == 4
    assert receiver.latest("app_response_time_ms", route="/items/{item_id}") < receiver.latest(
        "app_response_time_ms", route="/slow"
    )
    routes = {s["labels"]["route"] for s in receiver.samples(requests)}
    assert not any(r.startswith("/items/1") or r == "/no/such/page" for r in routes)
    assert all(s["labels"]["instance"] for s in receiver.samples())


def test_pushes_every_interval_without_a_shutdown(receiver: IngestReceiver) -> None:
    client = VigilClient(receiver.url, INGEST_KEY, flush_interval_s=0.2)
    try:
        with uvicorn_serving(shop_app(client)) as url, http_client(url) as http:
            http.get("/items/7")
            receiver.wait_for(lambda: receiver.value("app_requests_total") is not None)
            http.get("/boom")
            http.get("/items/8")
            # counters run on across intervals: two requests to the item route in all
            receiver.wait_for(
                lambda: (
                    receiver.value("app_requests_total", route="/items/{item_id}") == 2
                    and receiver.value("app_errors_total", route="/boom") == 1
                )
            )
            pushed_while_serving = len(receiver.batches)
        assert pushed_while_serving >= 2
        rates = [s["value"] for s in receiver.samples("app_error_rate_percent")]
        assert 100.0 in rates and rates[0] == 0.0
        assert receiver.refused == []
    finally:
        client.close()


def test_raw_paths_are_bounded_without_route_templates(receiver: IngestReceiver) -> None:
    async def bare(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    client = VigilClient(receiver.url, INGEST_KEY, flush_interval_s=3600, max_routes=3)
    app = VigilASGIMiddleware(bare, client)
    with uvicorn_serving(app, lifespan="off") as url, http_client(url) as http:
        for n in range(10):
            http.get(f"/page/{n}")
    client.close()
    routes = {s["labels"]["route"] for s in receiver.samples("app_requests_total")}
    assert routes == {"/page/0", "/page/1", "/page/2", OVERFLOW}
    assert receiver.latest("app_requests_total", route=OVERFLOW) == 7


@pytest.mark.parametrize("name", ["a\nb", "\u202ereversed"])
def test_unprintable_path_characters_do_not_poison_a_batch(
    receiver: IngestReceiver, name: str
) -> None:
    client = VigilClient(receiver.url, INGEST_KEY, start=False)
    client.record_request(None, f"/x/{name}", "GET", 200, 0.01)
    client.close()
    assert receiver.refused == []
    (route,) = {s["labels"]["route"] for s in receiver.samples("app_requests_total")}
    assert route.startswith("/x/") and route.isprintable()
