"""Users, passwords and browser sessions on a real gateway: argon2id, cookies, CSRF and
Origin on cookie writes, login throttling, the one-time setup token, per-identity limits."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.gateway.app import Gateway, build_gateway
from services.gateway.identity.authenticator import CSRF_COOKIE, SESSION_COOKIE
from shared.settings import Settings
from tests.conftest import TEST_ADMIN_KEY, RuntimeFactory
from tests.gateway.identity_helpers import ME, bearer, client_for, create_user, stored_bytes

PASSWORD = "correct horse battery"
LOGIN = "/api/monitoring/auth/login"


@contextlib.asynccontextmanager
async def login(
    gateway: Gateway, name: str, password: str = PASSWORD
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser logged in as ``name``."""
    async with client_for(gateway) as browser:
        response = await browser.post(LOGIN, json={"name": name, "password": password})
        assert response.status_code == 200, response.text
        yield browser


async def test_a_user_logs_in_with_an_httponly_strict_cookie_and_a_csrf_token(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    await create_user(client, "alice", "responder", PASSWORD)
    async with client_for(gateway) as browser:
        response = await browser.post(LOGIN, json={"name": "alice", "password": PASSWORD})
        assert response.status_code == 200, response.text
        cookies = {c.split("=", 1)[0]: c.lower() for c in response.headers.get_list("set-cookie")}
        assert (
            "httponly" in cookies[SESSION_COOKIE] and "samesite=strict" in cookies[SESSION_COOKIE]
        )
        assert "httponly" not in cookies[CSRF_COOKIE] and "path=/" in cookies[CSRF_COOKIE]
        assert "secure" not in cookies[SESSION_COOKIE]  # plain HTTP here
        csrf = response.json()["csrf_token"]
        assert browser.cookies[CSRF_COOKIE] == csrf

        me = (await browser.get(ME)).json()
        assert me["kind"] == "user" and me["name"] == "alice" and me["role"] == "responder"
        assert me["session_expires_at"] is not None

        # a cookie write without the token, with a wrong one, or from another site: refused
        logout = "/api/monitoring/auth/logout"
        missing = await browser.post(logout, json={})
        assert missing.status_code == 403 and "X-CSRF-Token" in missing.json()["detail"]
        wrong = await browser.post(logout, headers={"X-CSRF-Token": "0" * 64})
        assert wrong.status_code == 403
        foreign = await browser.post(
            logout, headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403 and "Origin" in foreign.json()["detail"]
        same_site = await browser.post(
            logout, headers={"X-CSRF-Token": csrf, "Origin": "http://localhost"}
        )
        assert same_site.status_code == 204
        assert (await browser.get(ME)).status_code == 401  # the session ended


async def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    await create_user(client, "bob", "viewer", PASSWORD)
    async with client_for(gateway) as browser:
        wrong = await browser.post(LOGIN, json={"name": "bob", "password": "not the password"})
        unknown = await browser.post(LOGIN, json={"name": "nobody", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert SESSION_COOKIE not in wrong.headers.get("set-cookie", "")


async def test_passwords_are_stored_as_argon2id_hashes_only(
    client: httpx.AsyncClient, gateway_settings: Settings
) -> None:
    await create_user(client, "carol", "viewer", PASSWORD)
    store = Path(gateway_settings.data_dir).parent / "nats"
    raw = stored_bytes(store)
    assert b"$argon2id$" in raw
    assert PASSWORD.encode() not in raw
    db = stored_bytes(Path(gateway_settings.data_dir))
    assert PASSWORD.encode() not in db
    listed = (await client.get("/api/monitoring/users")).text
    assert "argon2" not in listed and "carol" in listed


async def test_brute_force_on_one_account_is_throttled_with_retry_after(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    await create_user(client, "dave", "viewer", PASSWORD)
    async with client_for(gateway) as attacker:
        answers = [
            (await attacker.post(LOGIN, json={"name": "dave", "password": f"guess-{i}"}))
            for i in range(7)
        ]
        statuses = [a.status_code for a in answers]
        assert statuses[:5] == [401] * 5
        assert 429 in statuses[5:]
        throttled = next(a for a in answers if a.status_code == 429)
        assert int(throttled.headers["Retry-After"]) >= 1
        # even the right password waits now: guessing cannot outrun the backoff
        right = await attacker.post(LOGIN, json={"name": "dave", "password": PASSWORD})
        assert right.status_code == 429


async def test_removing_a_user_or_changing_the_password_ends_their_sessions(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    await create_user(client, "erin", "viewer", PASSWORD)
    await create_user(client, "frank", "viewer", PASSWORD)
    async with login(gateway, "erin") as erin, login(gateway, "frank") as frank:
        assert (await erin.get(ME)).status_code == 200
        changed = await client.put(
            "/api/monitoring/users/erin", json={"password": "a new password!"}
        )
        assert changed.status_code == 200, changed.text
        assert (await erin.get(ME)).status_code == 401
        assert (await client.delete("/api/monitoring/users/frank")).status_code == 204
        assert (await frank.get(ME)).status_code == 401
    assert (await client.get("/api/monitoring/users/frank")).status_code == 404
    promoted = await client.put("/api/monitoring/users/erin", json={"role": "admin"})
    assert promoted.json()["role"] == "admin"


async def test_user_names_are_unique_regardless_of_case_and_validated(
    client: httpx.AsyncClient,
) -> None:
    await create_user(client, "Grace", "viewer", PASSWORD)
    clash = await client.post(
        "/api/monitoring/users", json={"name": "grace", "role": "viewer", "password": PASSWORD}
    )
    assert clash.status_code == 409 and clash.json()["detail"].startswith("name:")
    for body, field in [
        ({"name": "ceo@company.com\u202e", "role": "viewer", "password": PASSWORD}, "name"),
        ({"name": "x\ny", "role": "viewer", "password": PASSWORD}, "name"),
        ({"name": "heidi", "role": "viewer", "password": "short"}, "password"),
        ({"name": "heidi", "role": "ingest", "password": PASSWORD}, "role"),
    ]:
        response = await client.post("/api/monitoring/users", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith(f"{field}:")


async def test_a_viewer_cannot_manage_users_or_keys(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    await create_user(client, "ivan", "viewer", PASSWORD)
    async with login(gateway, "ivan") as ivan:
        csrf = {"X-CSRF-Token": ivan.cookies[CSRF_COOKIE]}
        assert (await ivan.get("/api/monitoring/users")).status_code == 403
        made = await ivan.post(
            "/api/monitoring/users",
            json={"name": "mallory", "role": "admin", "password": PASSWORD},
            headers=csrf,
        )
        assert made.status_code == 403
        assert (await ivan.get("/api/monitoring/audit")).status_code == 403


async def test_first_start_without_a_bootstrap_key_offers_a_one_time_setup(
    gateway_settings: Settings, start_service: RuntimeFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = gateway_settings.model_copy(update={"bootstrap_admin_key": None})
    gateway = build_gateway(settings)
    await start_service(gateway.runtime)
    printed = capsys.readouterr().out
    assert "/monitoring/setup#token=" in printed
    token = printed.split("#token=", 1)[1].split()[0]
    setup = "/api/monitoring/auth/setup"
    async with client_for(gateway) as browser:
        assert (await browser.get("/api/monitoring/users")).status_code == 401  # not open
        wrong = await browser.post(
            setup, json={"token": "x" * 43, "name": "root", "password": PASSWORD}
        )
        assert wrong.status_code == 401 and wrong.json()["detail"].startswith("token:")
        made = await browser.post(
            setup, json={"token": token, "name": "root", "password": PASSWORD}
        )
        assert made.status_code == 201, made.text
        assert made.json()["role"] == "admin"
        assert (await browser.get("/api/monitoring/users")).status_code == 200  # logged in
        again = await browser.post(
            setup, json={"token": token, "name": "eve", "password": PASSWORD}
        )
        assert again.status_code == 409


async def test_each_identity_has_a_request_limit(
    gateway_settings: Settings, start_service: RuntimeFactory
) -> None:
    settings = gateway_settings.model_copy(update={"api_rate_per_s": 1.0, "api_burst": 3})
    gateway = build_gateway(settings)
    await start_service(gateway.runtime)
    async with client_for(gateway, bearer(TEST_ADMIN_KEY)) as admin:
        statuses = [(await admin.get(ME)).status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200] and statuses[-1] == 429
        limited = await admin.get(ME)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
