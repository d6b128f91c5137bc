"""PromQL answered by a real VictoriaMetrics through ``RemoteQueryClient``: the store's
Prometheus JSON comes back as it said it, its errors as ``RemoteQueryError``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from services.metrics.remote.auth import RemoteAuth
from services.metrics.remote.query import RemoteQueryClient, RemoteQueryError
from shared.natsserver import free_port
from shared.promwire import REMOTE_WRITE_HEADERS, encode
from shared.settings import Settings
from tests.metrics.remote.conftest import VictoriaMetrics
from tests.waiting import eventually

NOW_S = int(time.time()) // 60 * 60 - 600  # whole minutes, in the recent past


@pytest.fixture
async def loaded(victoria: VictoriaMetrics) -> VictoriaMetrics:
    """``q_load`` for hosts a and b, one point a minute for ten minutes: a = n, b = 10 n."""
    body = encode(
        [
            (
                {"__name__": "q_load", "host": host, "zone": "eu"},
                [(float(n * factor), (NOW_S + 60 * n) * 1000) for n in range(10)],
            )
            for host, factor in (("a", 1), ("b", 10))
        ]
    )
    async with httpx.AsyncClient() as http:
        response = await http.post(victoria.write_url, content=body, headers=REMOTE_WRITE_HEADERS)
    assert response.status_code == 204, response.text
    await eventually(lambda: victoria.export('{__name__="q_load"}'), what="the samples stored")
    return victoria


@pytest.fixture
async def client(loaded: VictoriaMetrics) -> AsyncIterator[RemoteQueryClient]:
    async with RemoteQueryClient(loaded.url, timeout=5.0) as remote:
        yield remote


async def test_instant_query(client: RemoteQueryClient) -> None:
    body = await client.query({"query": "sum by (zone) (q_load)", "time": str(NOW_S + 540)})
    assert body["status"] == "success"
    [result] = body["data"]["result"]
    assert body["data"]["resultType"] == "vector"
    assert result["metric"] == {"zone": "eu"}
    assert result["value"] == [NOW_S + 540, "99"]  # 9 + 90


async def test_range_query(client: RemoteQueryClient) -> None:
    body = await client.query_range(
        {"query": 'q_load{host="b"}', "start": str(NOW_S), "end": str(NOW_S + 240), "step": "60"}
    )
    [series] = body["data"]["result"]
    assert body["data"]["resultType"] == "matrix"
    assert series["metric"] == {"__name__": "q_load", "host": "b", "zone": "eu"}
    assert series["values"] == [[NOW_S + 60 * n, str(10 * n)] for n in range(5)]


async def test_series_labels_and_values(client: RemoteQueryClient) -> None:
    window = {"start": str(NOW_S - 60), "end": str(NOW_S + 600)}
    series = await client.series({"match[]": ['q_load{host="a"}', 'q_load{host="b"}'], **window})
    assert sorted(s["host"] for s in series["data"]) == ["a", "b"]
    labels = await client.labels(window)
    assert {"__name__", "host", "zone"} <= set(labels["data"])
    values = await client.label_values("host", {"match[]": "q_load", **window})
    assert values["data"] == ["a", "b"]
    names = await client.label_values("__name__", window)
    assert "q_load" in names["data"]


async def test_a_bad_query_is_the_stores_error(client: RemoteQueryClient) -> None:
    with pytest.raises(RemoteQueryError) as caught:
        await client.query({"query": "sum((", "time": str(NOW_S)})
    # VictoriaMetrics calls a parse error 422; Prometheus bad_data 400
    assert (caught.value.error_type, caught.value.status) in (("execution", 422), ("bad_data", 400))
    assert "sum((" in caught.value.message


async def test_a_store_out_of_reach_is_unavailable() -> None:
    async with RemoteQueryClient(f"http://127.0.0.1:{free_port()}", timeout=2.0) as remote:
        with pytest.raises(RemoteQueryError) as caught:
            await remote.query({"query": "up"})
    assert (caught.value.error_type, caught.value.status) == ("unavailable", 503)


@pytest.fixture
async def guarded() -> AsyncIterator[tuple[str, list[str | None]]]:
    """A store that wants ``Bearer t0ken`` or basic ``vigil:s3cret``; records what came."""
    seen: list[str | None] = []

    async def query(request: web.Request) -> web.Response:
        said = request.headers.get("Authorization")
        seen.append(said)
        if said not in ("Bearer t0ken", "Basic dmlnaWw6czNjcmV0"):
            return web.Response(status=401, text="unauthorized")
        body: dict[str, Any] = {"status": "success", "data": {"resultType": "vector", "result": []}}
        return web.json_response(body)

    app = web.Application()
    app.router.add_post("/prefix/api/v1/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/prefix/", seen
    await runner.cleanup()


async def test_credentials_go_to_the_store(guarded: tuple[str, list[str | None]]) -> None:
    url, seen = guarded
    for auth in (
        RemoteAuth(bearer_token=SecretStr("t0ken")),
        RemoteAuth(None, "vigil", SecretStr("s3cret")),
    ):
        async with RemoteQueryClient(url, auth) as remote:
            assert (await remote.query({"query": "up"}))["status"] == "success"
    async with RemoteQueryClient(url) as remote:
        with pytest.raises(RemoteQueryError) as caught:
            await remote.query({"query": "up"})
    assert (caught.value.error_type, caught.value.status) == ("unavailable", 503)
    assert seen == ["Bearer t0ken", "Basic dmlnaWw6czNjcmV0", None]


def test_the_client_comes_from_settings() -> None:
    assert RemoteQueryClient.from_settings(Settings()) is None
    remote = RemoteQueryClient.from_settings(
        Settings(metrics_query_url="http://store:8428/", metrics_query_bearer_token=SecretStr("t"))
    )
    assert remote is not None
    assert remote.base_url == "http://store:8428"
    assert remote.headers["Authorization"] == "Bearer t"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"metrics_query_url": "ftp://store"}, "http:// or https://"),
        ({"metrics_remote_write_url": "store:8428"}, "http:// or https://"),
        (
            {"metrics_remote_write_bearer_token": "t", "metrics_remote_write_username": "u"},
            "give one, not both",
        ),
        ({"metrics_query_username": "u"}, "give both"),
    ],
)
def test_bad_remote_settings_name_the_field(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**env)  # type: ignore[arg-type]
