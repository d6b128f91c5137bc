"""The Prometheus query API's parameters, roles and fixed answers, checked at the gateway:
a bad parameter is 400 bad_data naming it (as Prometheus words it), before any query runs."""

from __future__ import annotations

import httpx
import pytest

from services.gateway.app import Gateway
from services.gateway.metrics.prom_api_params import (
    MAX_TIME_MS,
    MIN_TIME_MS,
    BadParameter,
    parse_duration_ms,
    parse_time_ms,
)
from tests.gateway.identities import headers_for

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
RANGE = {"query": "up", "start": "1700000000", "end": "1700003600", "step": "15"}


def prom_error(response: httpx.Response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "error" and body["errorType"] == error_type, body
    return str(body["error"])


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1700000000", 1_700_000_000_000),
        ("1700000000.123", 1_700_000_000_123),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14T22:13:20.5Z", 1_700_000_000_500),
        ("2023-11-15T00:13:20+02:00", 1_700_000_000_000),
        ("0001-01-01T00:00:00Z", MIN_TIME_MS),
        ("9999-12-31T23:59:59Z", MAX_TIME_MS),
    ],
)
def test_times_are_unix_seconds_or_rfc3339(text: str, ms: int) -> None:
    assert parse_time_ms(text, "time") == ms


@pytest.mark.parametrize("text", ["abc", "2023-11-14", "2023-11-14T22:13:20", "nan", "inf", ""])
def test_a_bad_time_names_its_parameter(text: str) -> None:
    with pytest.raises(BadParameter, match='invalid parameter "start": cannot parse'):
        parse_time_ms(text, "start")


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("15", 15_000),
        ("0.5", 500),
        ("15s", 15_000),
        ("1m", 60_000),
        ("1h30m", 5_400_000),
        ("250ms", 250),
        ("1d", 86_400_000),
        ("1w", 604_800_000),
        ("2m30s", 150_000),
    ],
)
def test_durations_are_prometheus_durations_or_float_seconds(text: str, ms: int) -> None:
    assert parse_duration_ms(text, "step") == ms


@pytest.mark.parametrize("text", ["abc", "15x", "1.5m", "m", "", "inf"])
def test_a_bad_duration_names_its_parameter(text: str) -> None:
    with pytest.raises(BadParameter, match='invalid parameter "step": cannot parse'):
        parse_duration_ms(text, "step")


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("/api/v1/query", {}, 'invalid parameter "query"'),
        ("/api/v1/query", {"query": "up", "time": "yesterday"}, 'invalid parameter "time"'),
        ("/api/v1/query", {"query": "up", "timeout": "soon"}, 'invalid parameter "timeout"'),
        ("/api/v1/query_range", {**RANGE, "start": "abc"}, 'invalid parameter "start"'),
        ("/api/v1/query_range", {**RANGE, "end": "x"}, 'invalid parameter "end"'),
        ("/api/v1/query_range", {**RANGE, "step": "fast"}, 'invalid parameter "step"'),
        ("/api/v1/query_range", {**RANGE, "step": "0"}, "zero or negative query resolution"),
        ("/api/v1/query_range", {**RANGE, "step": "-1s"}, 'invalid parameter "step"'),
        ("/api/v1/query_range", {**RANGE, "end": "1699999999"}, "end timestamp must not be"),
        ("/api/v1/query_range", {**RANGE, "step": "0.1"}, "exceeded maximum resolution of 11,000"),
        ("/api/v1/query_range", {"query": "up", "end": "1", "step": "1"}, '"start"'),
        ("/api/v1/query_range", {"query": "up", "start": "1", "end": "2"}, '"step"'),
        ("/api/v1/query_range", {**RANGE, "query": ""}, 'invalid parameter "query"'),
        ("/api/v1/series", {}, "no match[] parameter provided"),
        ("/api/v1/series", {"match[]": "up", "start": "now"}, 'invalid parameter "start"'),
        ("/api/v1/labels", {"end": "later"}, 'invalid parameter "end"'),
        ("/api/v1/labels", {"limit": "some"}, 'invalid parameter "limit"'),
        ("/api/v1/label/1abc/values", {}, 'invalid label name: "1abc"'),
        ("/api/v1/label/job/values", {"start": "x"}, 'invalid parameter "start"'),
    ],
)
async def test_a_bad_parameter_is_400_bad_data_naming_it(
    client: httpx.AsyncClient, path: str, params: dict[str, str], says: str
) -> None:
    assert says in prom_error(await client.get(path, params=params), 400, "bad_data")
    if "label/" not in path:  # Grafana POSTs the same parameters as a form
        posted = await client.post(path, data=params, headers=FORM)
        assert says in prom_error(posted, 400, "bad_data")


async def test_the_step_may_be_given_as_a_duration_when_the_range_is_right(
    client: httpx.AsyncClient,
) -> None:
    """Valid parameters pass the gateway; with no metrics service answering, the query
    is 503 unavailable in Prometheus' envelope (never a problem body or a 500)."""
    response = await client.post("/api/v1/query_range", data={**RANGE, "step": "15s"}, headers=FORM)
    assert "metrics" in prom_error(response, 503, "unavailable")


async def test_buildinfo_says_a_prometheus_2_version_for_grafana(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/status/buildinfo")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    major, minor, _patch = (int(part) for part in body["data"]["version"].split("."))
    assert (major, minor) >= (2, 50)
    assert (await client.head("/api/v1/status/buildinfo")).status_code == 200


async def test_metadata_and_exemplars_are_empty(client: httpx.AsyncClient) -> None:
    metadata = await client.get("/api/v1/metadata")
    assert metadata.json() == {"status": "success", "data": {}}
    exemplars = await client.post(
        "/api/v1/query_exemplars",
        data={"query": "up", "start": "1700000000", "end": "1700003600"},
        headers=FORM,
    )
    assert exemplars.json() == {"status": "success", "data": []}


async def test_queries_need_a_viewer_and_refuse_an_ingest_key(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    ingest = await headers_for(gateway.app, client, "ingest")
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as anonymous:
        for method, path in [
            ("GET", "/api/v1/query?query=up"),
            ("POST", "/api/v1/query_range"),
            ("GET", "/api/v1/series?match[]=up"),
            ("GET", "/api/v1/labels"),
            ("GET", "/api/v1/label/__name__/values"),
            ("GET", "/api/v1/status/buildinfo"),
            ("GET", "/api/v1/metadata"),
        ]:
            form = {"data": RANGE, "headers": FORM} if method == "POST" else {}
            refused = await anonymous.request(method, path, **form)  # type: ignore[arg-type]
            assert refused.status_code == 401, (method, path, refused.text)
            with_ingest = await anonymous.request(
                method,
                path,
                data=form.get("data"),
                headers={**ingest, **FORM} if form else ingest,
            )
            assert with_ingest.status_code == 403, (method, path, with_ingest.text)
