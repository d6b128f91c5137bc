"""The gateway's HTTP surface over a real socket: Host check, declared media types,
closed CORS, forwarded headers from trusted proxies only, security headers, and the
API documentation served with no internet access."""

from __future__ import annotations

import re
from typing import Any

import httpx
import nats.js.errors
import orjson
import pytest

from services.gateway.surface.headers import DASHBOARD_POLICY
from shared.settings import Settings
from tests.conftest import ADMIN_HEADERS as ADMIN
from tests.conftest import RuntimeFactory
from tests.gateway.surface_server import PROBE, Served, serve

API = "/api/monitoring"
FOREIGN = "https://attacker.example"
BATCH = orjson.dumps([{"name": "surface_probe", "value": 1.0, "labels": {"k": "v"}}])


@pytest.fixture
async def served(gateway_settings: Settings, start_service: RuntimeFactory) -> Served:
    return await serve(gateway_settings, start_service)


async def request(served: Served, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=served.url, timeout=10.0) as http:
        return await http.request(method, path, **kwargs)


def assert_problem(response: httpx.Response, status: int, field: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["field"] == field
    assert body["type"] == "about:blank"
    assert body["title"]
    assert body["detail"].startswith(f"{field}: ")
    return body


async def api_batches_stored(served: Served) -> bool:
    try:
        await served.gateway.state.bus().js.get_last_msg("METRICS", "metrics.samples.api")
    except nats.js.errors.NotFoundError:
        return False
    return True


# --- security headers ----------------------------------------------------------


def assert_secured(response: httpx.Response) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    policy = headers["content-security-policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy


@pytest.mark.parametrize(
    "path", ["/", "/static/app.js", f"{API}/health/system", "/nowhere", "/openapi.json"]
)
async def test_every_response_carries_the_security_headers(served: Served, path: str) -> None:
    response = await request(served, "GET", path)
    assert_secured(response)
    assert response.headers["content-security-policy"] == DASHBOARD_POLICY


async def test_refusals_carry_the_security_headers_too(served: Served) -> None:
    response = await request(served, "GET", "/", headers={"Host": "rebound.example"})
    assert response.status_code == 400
    assert_secured(response)


async def test_the_dashboard_has_no_inline_script_or_style(served: Served) -> None:
    """What the policy forbids must not be in the page, or the browser drops it."""
    page = (await request(served, "GET", "/")).text
    assert "<style" not in page
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), "inline <script>"
    assert not re.search(r"\sstyle=", page), "style attribute"
    assert not re.search(r"\son[a-z]+=", page), "inline event handler"


# --- Host (DNS rebinding) ------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:8080", "127.0.0.1.nip.io", "x@127.0.0.1", ""]
)
async def test_a_foreign_host_is_refused(served: Served, host: str) -> None:
    response = await request(served, "GET", f"{API}/health/system", headers={"Host": host})
    body = assert_problem(response, 400, "Host")
    assert "VIGIL_ALLOWED_HOSTS" in body["detail"]
    assert body["instance"] == f"{API}/health/system"


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST:1234", "127.0.0.1:9", "[::1]:80", "10.1.2.3", "app.localhost"],
)
async def test_loopback_names_and_ip_literals_are_served(served: Served, host: str) -> None:
    response = await request(served, "GET", "/health", headers={"Host": host})
    assert response.status_code == 200, response.text


async def test_configured_names_and_their_subdomains_are_served(
    gateway_settings: Settings, start_service: RuntimeFactory
) -> None:
    settings = gateway_settings.model_copy(
        update={"allowed_hosts": ["vigil.example.com", ".corp.example"]}
    )
    served = await serve(settings, start_service)
    for host in ("vigil.example.com", "Vigil.Example.com:443", "corp.example", "a.corp.example"):
        response = await request(served, "GET", "/health", headers={"Host": host})
        assert response.status_code == 200, host
    refused = await request(served, "GET", "/health", headers={"Host": "evilcorp.example"})
    assert_problem(refused, 400, "Host")


# --- media types of writes -----------------------------------------------------


async def test_a_text_plain_sample_batch_is_refused_before_it_is_stored(served: Served) -> None:
    """The CORS-simple POST a page elsewhere could send: refused, nothing published."""
    response = await request(
        served, "POST", f"{API}/metrics", content=BATCH, headers={"Content-Type": "text/plain"}
    )
    body = assert_problem(response, 415, "Content-Type")
    assert "text/plain" in body["detail"] and "application/json" in body["detail"]
    assert not await api_batches_stored(served)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        "",
    ],
)
async def test_writes_in_undeclared_media_types_are_refused(
    served: Served, content_type: str
) -> None:
    for method, path in (
        ("POST", f"{API}/incidents"),
        ("PUT", f"{API}/incidents/some-id/status"),
        ("POST", f"{PROBE}/json"),
    ):
        response = await request(
            served, method, path, content=b'{"x": 1}', headers={"Content-Type": content_type}
        )
        assert_problem(response, 415, "Content-Type")


async def test_a_body_without_a_content_type_is_refused(served: Served) -> None:
    response = await request(served, "POST", f"{PROBE}/json", content=b'{"x": 1}')
    assert "content-type" not in response.request.headers
    body = assert_problem(response, 415, "Content-Type")
    assert "missing" in body["detail"]


async def test_json_writes_pass(served: Served) -> None:
    for content_type in ("application/json", "Application/JSON; charset=utf-8"):
        response = await request(
            served,
            "POST",
            f"{PROBE}/json",
            content=b'{"x": 1}',
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"received": {"x": 1}}


async def test_a_bodyless_post_needs_credentials_and_with_a_cookie_a_csrf_token(
    served: Served,
) -> None:
    """A page elsewhere can make a browser send a bodyless POST (an acknowledge) with no
    Content-Type and with its cookies, but can neither read the CSRF token nor add it,
    or an Authorization header, without a CORS grant."""
    ack = f"{API}/alerts/some-alert/ack"
    anonymous = await request(served, "POST", ack)
    assert "content-type" not in anonymous.request.headers
    assert anonymous.status_code == 401, anonymous.text
    stale = await request(served, "POST", ack, headers={"Cookie": "vigil_session=ended"})
    assert stale.status_code == 401, stale.text

    async with httpx.AsyncClient(base_url=served.url, timeout=10.0) as browser:
        created = await browser.post(
            f"{API}/users",
            json={"name": "operator", "role": "responder", "password": "a-long-password"},
            headers=ADMIN,
        )
        assert created.status_code == 201, created.text
        login = await browser.post(
            f"{API}/auth/login", json={"name": "operator", "password": "a-long-password"}
        )
        assert login.status_code == 200, login.text
        # the browser sends its cookie along; the page cannot add the CSRF token
        forged = await browser.post(ack)
        assert "vigil_session" in forged.request.headers["cookie"]
        assert_problem(forged, 403, "X-CSRF-Token")
        token = {"X-CSRF-Token": browser.cookies["vigil_csrf"]}
        own = await browser.post(ack, headers=token)
        # past every check of the gateway: the command goes out (no alerts service runs here)
        assert own.status_code == 503, own.text
        assert "vigil.cmd.alerts.acknowledge" in own.json()["detail"]
    as_json = await request(
        served, "POST", f"{PROBE}/bodyless", headers={"Content-Type": "application/json"}
    )
    assert as_json.json() == {"ran": True}
    with_key = await request(
        served, "POST", f"{PROBE}/bodyless", headers={"Authorization": "Bearer vk_x_y"}
    )
    assert with_key.json() == {"ran": True}


async def test_bodyless_deletes_need_no_content_type(served: Served) -> None:
    """DELETE is never a CORS-simple request: a browser asks first."""
    response = await request(served, "DELETE", f"{API}/synthetic/checks/nothing-here")
    assert response.status_code != 415, response.text


async def test_a_route_accepts_the_media_types_it_declares(served: Served) -> None:
    protobuf = await request(
        served,
        "POST",
        f"{PROBE}/proto",
        content=b"\x08\x01",
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert protobuf.json() == {"bytes": 2}
    as_json = await request(
        served,
        "POST",
        f"{PROBE}/proto",
        content=b"{}",
        headers={"Content-Type": "application/json"},
    )
    body = assert_problem(as_json, 415, "Content-Type")
    assert "application/x-protobuf" in body["detail"]


async def test_writes_to_unknown_paths_are_left_to_the_router(served: Served) -> None:
    response = await request(served, "POST", "/nowhere", content=b"x")
    assert response.status_code in (404, 405)


# --- CORS and Origin -----------------------------------------------------------


async def test_cors_is_closed_without_an_allow_list(served: Served) -> None:
    read = await request(served, "GET", f"{API}/health/system", headers={"Origin": FOREIGN})
    assert "access-control-allow-origin" not in read.headers
    preflight = await request(
        served,
        "OPTIONS",
        f"{API}/incidents",
        headers={
            "Origin": FOREIGN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert_problem(preflight, 403, "Origin")
    assert not any(name.startswith("access-control-") for name in preflight.headers)


async def test_a_write_from_a_foreign_page_is_refused_whatever_it_carries(
    served: Served,
) -> None:
    response = await request(
        served,
        "POST",
        f"{PROBE}/json",
        content=b"{}",
        headers={
            "Origin": FOREIGN,
            "Content-Type": "application/json",
            "Authorization": "Bearer vk_x_y",
        },
    )
    assert_problem(response, 403, "Origin")
    null_origin = await request(
        served,
        "POST",
        f"{PROBE}/json",
        content=b"{}",
        headers={"Origin": "null", "Content-Type": "application/json"},
    )
    assert_problem(null_origin, 403, "Origin")


async def test_a_same_origin_write_passes(served: Served) -> None:
    response = await request(
        served,
        "POST",
        f"{PROBE}/json",
        content=b"{}",
        headers={"Origin": served.url, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text


async def test_an_allow_listed_origin_gets_a_cors_grant(
    gateway_settings: Settings, start_service: RuntimeFactory
) -> None:
    allowed = "https://ops.example.com"
    settings = gateway_settings.model_copy(update={"cors_origins": [allowed]})
    served = await serve(settings, start_service)
    preflight = await request(
        served,
        "OPTIONS",
        f"{PROBE}/json",
        headers={
            "Origin": allowed,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == allowed
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    write = await request(
        served,
        "POST",
        f"{PROBE}/json",
        content=b"{}",
        headers={"Origin": allowed, "Content-Type": "application/json"},
    )
    assert write.status_code == 200
    assert write.headers["access-control-allow-origin"] == allowed
    foreign = await request(served, "GET", "/health", headers={"Origin": FOREIGN})
    assert "access-control-allow-origin" not in foreign.headers


# --- reverse proxies -----------------------------------------------------------

FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}


async def test_forwarded_headers_are_ignored_from_an_untrusted_peer(served: Served) -> None:
    seen = (await request(served, "GET", f"{PROBE}/client", headers=FORWARDED)).json()
    assert seen == {"client": "127.0.0.1", "secure": False, "peer": "127.0.0.1", "scheme": "http"}


async def test_a_trusted_proxy_names_the_client_and_its_scheme(
    gateway_settings: Settings, start_service: RuntimeFactory
) -> None:
    settings = gateway_settings.model_copy(update={"trusted_proxies": ["127.0.0.0/8"]})
    served = await serve(settings, start_service)
    seen = (await request(served, "GET", f"{PROBE}/client", headers=FORWARDED)).json()
    assert seen == {
        "client": "203.0.113.7",
        "secure": True,
        "peer": "203.0.113.7",
        "scheme": "https",
    }
    # a client cannot hide behind an address it puts first: the nearest untrusted hop counts
    chained = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7, 127.0.0.2"}
    seen = (await request(served, "GET", f"{PROBE}/client", headers=chained)).json()
    assert seen["client"] == "203.0.113.7"
    # the name the client asked the proxy for is the one checked
    rebound = await request(
        served, "GET", "/health", headers={"X-Forwarded-Host": "attacker.example"}
    )
    assert_problem(rebound, 400, "Host")


# --- the API documentation, offline --------------------------------------------


def external_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["'](?:https?:)?//[^"']+""", html)


async def test_swagger_ui_is_served_from_the_gateway(served: Served) -> None:
    page = await request(served, "GET", "/docs")
    assert page.status_code == 200
    assert external_urls(page.text) == []
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assets = re.findall(r"""(?:src|href)="(/static/docs/[^"]+)""", page.text)
    assert len(assets) == 4  # favicon, stylesheet, bundle, start script
    for asset in assets:
        response = await request(served, "GET", asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 20
    assert 'data-openapi="/openapi.json"' in page.text


async def test_redoc_is_served_from_the_gateway_with_a_fresh_style_nonce(served: Served) -> None:
    nonces = []
    for _ in range(2):
        page = await request(served, "GET", "/redoc")
        assert page.status_code == 200
        assert external_urls(page.text) == []
        policy = page.headers["content-security-policy"]
        assert "unsafe-inline" not in policy and "script-src 'self'" in policy
        nonce = re.search(r"style-src 'self' 'nonce-([^']+)'", policy)
        assert nonce is not None
        assert f'nonce="{nonce.group(1)}"' in page.text
        nonces.append(nonce.group(1))
        for asset in re.findall(r"""src="(/static/docs/[^"]+)""", page.text):
            assert (await request(served, "GET", asset)).status_code == 200
    assert nonces[0] != nonces[1]


async def test_the_old_cdn_pages_are_gone(served: Served) -> None:
    redirect = await request(served, "GET", "/docs/oauth2-redirect")
    assert redirect.status_code == 404
    paths = [getattr(route, "path", None) for route in served.gateway.app.routes]
    assert paths.count("/docs") == 1 and paths.count("/redoc") == 1


async def test_installing_twice_changes_nothing(served: Served) -> None:
    from services.gateway import surface

    routes = len(served.gateway.app.routes)
    surface.install(served.gateway.app, served.gateway.state)
    assert len(served.gateway.app.routes) == routes
    response = await request(served, "GET", "/health")
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
