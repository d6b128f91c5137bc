"""Every route in the OpenAPI document checks who is asking: anonymous → 401, a viewer
writing → 403, the right role → neither; over the gateway's real HTTP server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.gateway.access import Role
from services.gateway.app import Gateway
from tests.gateway.identities import ADMIN, headers_for
from tests.gateway.remote_write_bodies import REMOTE_WRITE_HEADERS
from tests.waiting import eventually

API = "/api/monitoring"
READS = {"get", "head"}
# writes a responder may make; every other write needs an admin (POST /metrics: ingest)
RESPONDER_WRITES = {
    ("post", f"{API}/alerts/{{alert_id}}/ack"),
    ("post", f"{API}/alerts/{{alert_id}}/resolve"),
    ("post", f"{API}/incidents"),
    ("put", f"{API}/incidents/{{incident_id}}/status"),
    ("post", f"{API}/incidents/{{incident_id}}/notes"),
    ("put", f"{API}/incidents/{{incident_id}}/assignee"),
    ("put", f"{API}/incidents/{{incident_id}}/severity"),
    ("post", f"{API}/synthetic/checks/{{check_id}}/run"),
    ("post", f"{API}/deadletters/{{dead_letter_id}}/retry"),
    ("post", f"{API}/silences"),
    ("delete", f"{API}/silences/{{silence_id}}"),
    # Alertmanager's paths for amtool
    ("post", "/api/v2/silences"),
    ("delete", "/api/v2/silence/{silence_id}"),
}
INGEST_WRITES = {("post", f"{API}/metrics"), ("post", "/api/v1/write")}
# calls any signed-in identity may make about itself
OWN_SESSION_WRITES = {("post", f"{API}/auth/logout"), ("post", f"{API}/auth/password")}
OWN_SESSION_READS = {("get", f"{API}/auth/me")}
# reads only an admin may make: who may sign in, and the audit log
ADMIN_READ_PREFIXES = (f"{API}/users", f"{API}/keys", f"{API}/audit")


@pytest.fixture
async def served(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    await eventually(lambda: gateway.http.started)
    base = f"http://127.0.0.1:{gateway.runtime.settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
        yield http


def operations(schema: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(method, path template, public) of every documented operation."""
    found = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head"):
                public = operation.get("security", schema.get("security")) == []
                found.append((method, path, public))
    return found


async def call(
    http: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    url = re.sub(r"\{[^}]+\}", "x", path)
    if path == "/api/v1/write":  # Prometheus remote write: an empty WriteRequest
        headers = {**headers, **REMOTE_WRITE_HEADERS}
        async with http.stream("POST", url, content=b"\x00", headers=headers) as response:
            return response
    body = {} if method not in READS else None
    async with http.stream(method.upper(), url, json=body, headers=headers) as response:
        return response  # the status is enough; a live stream is not read


def needed(method: str, path: str) -> Role:
    if method in READS:
        return "admin" if path.startswith(ADMIN_READ_PREFIXES) else "viewer"
    if (method, path) in INGEST_WRITES:
        return "ingest"
    if (method, path) in RESPONDER_WRITES:
        return "responder"
    if (method, path) in OWN_SESSION_WRITES:
        return "viewer"
    return "admin"


async def test_every_documented_route_checks_the_caller(
    served: httpx.AsyncClient, gateway: Gateway
) -> None:
    schema = (await served.get("/openapi.json")).json()
    walked = operations(schema)
    assert len(walked) > 20
    keys = {role: await headers_for(gateway.app, served, role) for role in ROLES}
    for method, path, public in walked:
        anonymous = await call(served, method, path, {})
        if public:
            assert anonymous.status_code not in (401, 403), (method, path)
            continue
        assert anonymous.status_code == 401, (method, path, anonymous.status_code)
        role = needed(method, path)
        allowed = await call(served, method, path, keys[role])
        assert allowed.status_code not in (401, 403), (method, path, role, allowed.status_code)
        if method not in READS and (method, path) not in OWN_SESSION_WRITES:
            refused = await call(served, method, path, keys["viewer"])
            assert refused.status_code == 403, (method, path, refused.status_code)
        if role == "admin":
            refused = await call(served, method, path, keys["responder"])
            assert refused.status_code == 403, (method, path, "responder")
        if method in READS and (method, path) not in OWN_SESSION_READS:
            refused = await call(served, method, path, keys["ingest"])
            assert refused.status_code == 403, (method, path, "ingest")


ROLES: tuple[Role, ...] = ("viewer", "responder", "admin", "ingest")


async def test_the_public_routes_are_exactly_the_documented_few(served: httpx.AsyncClient) -> None:
    schema = (await served.get("/openapi.json")).json()
    public = {(m, p) for m, p, is_public in operations(schema) if is_public}
    assert {("get", "/health"), ("get", "/ready")} <= public
    assert all(p in ("/health", "/ready") or p.startswith(f"{API}/auth/") for _, p in public)
    assert set(schema["components"]["securitySchemes"]) == {"apiKey", "session"}
    assert schema["security"] == [{"apiKey": []}, {"session": []}]


async def test_the_dashboard_shell_and_docs_need_no_key(served: httpx.AsyncClient) -> None:
    pages = ("/", "/monitoring", "/monitoring/setup", "/static/app.js", "/static/setup.js")
    for path in (*pages, "/docs", "/openapi.json", "/health"):
        response = await served.get(path)
        assert response.status_code == 200, path
    assert (await served.get("/monitoring")).text == (await served.get("/")).text
    assert "setup.js" in (await served.get("/monitoring/setup")).text
    documented = (await served.get("/openapi.json")).json()["paths"]
    assert not set(pages) & set(documented)


async def test_a_wrong_or_missing_key_is_401_with_the_reason(served: httpx.AsyncClient) -> None:
    missing = await served.get(f"{API}/alerts")
    wrong = await served.get(f"{API}/alerts", headers={"Authorization": "Bearer nope" * 8})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 401
    assert (await served.get(f"{API}/alerts", headers=ADMIN)).status_code == 200


async def test_a_viewer_may_not_write_and_is_told_why(
    served: httpx.AsyncClient, gateway: Gateway
) -> None:
    viewer = await headers_for(gateway.app, served, "viewer")
    refused = await served.post(f"{API}/incidents", json={"title": "x"}, headers=viewer)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "responder" in refused.json()["detail"]
    ingest = await headers_for(gateway.app, served, "ingest")
    assert (await served.get(f"{API}/alerts", headers=ingest)).status_code == 403
