"""A signed-in user changes their own password: the current one is asked for (and
guessing it is throttled like a login), every other session ends, this browser stays
signed in; and a live stream ends with the session or key it was opened with."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from services.gateway.app import Gateway
from services.gateway.identity.authenticator import CSRF_COOKIE, SESSION_COOKIE
from tests.gateway.identities import ADMIN
from tests.gateway.identity_helpers import ME, bearer, client_for, create_key, create_user
from tests.waiting import eventually

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new secret"
LOGIN = "/api/monitoring/auth/login"
CHANGE = "/api/monitoring/auth/password"
EVENTS = "/api/monitoring/events"


@contextlib.asynccontextmanager
async def signed_in(
    gateway: Gateway, name: str, password: str = PASSWORD
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(gateway) as browser:
        response = await browser.post(LOGIN, json={"name": name, "password": password})
        assert response.status_code == 200, response.text
        yield browser


def csrf(browser: httpx.AsyncClient) -> dict[str, str]:
    return {"X-CSRF-Token": browser.cookies[CSRF_COOKIE]}


async def test_a_user_changes_their_own_password(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    await create_user(client, "nora", "viewer", PASSWORD)
    async with signed_in(gateway, "nora") as here, signed_in(gateway, "nora") as elsewhere:
        body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        unsigned = await here.post(CHANGE, json=body)
        assert unsigned.status_code == 403 and "X-CSRF-Token" in unsigned.json()["detail"]

        wrong = await here.post(
            CHANGE, json={**body, "current_password": "not it at all"}, headers=csrf(here)
        )
        assert wrong.status_code == 403, wrong.text
        assert wrong.json()["field"] == "current_password"
        short = await here.post(CHANGE, json={**body, "new_password": "short"}, headers=csrf(here))
        assert short.status_code == 422 and short.json()["detail"].startswith("new_password:")

        old_session = here.cookies[SESSION_COOKIE]
        changed = await here.post(CHANGE, json=body, headers=csrf(here))
        assert changed.status_code == 200, changed.text
        assert changed.json()["name"] == "nora" and changed.json()["role"] == "viewer"
        assert here.cookies[SESSION_COOKIE] != old_session
        assert changed.json()["csrf_token"] == here.cookies[CSRF_COOKIE]
        assert (await here.get(ME)).status_code == 200  # this browser: a new session
        assert (await elsewhere.get(ME)).status_code == 401  # every other one ended
        async with client_for(gateway) as thief:
            thief.cookies.set(SESSION_COOKIE, old_session)
            assert (await thief.get(ME)).status_code == 401

    async with client_for(gateway) as browser:
        old = await browser.post(LOGIN, json={"name": "nora", "password": PASSWORD})
        assert old.status_code == 401
        new = await browser.post(LOGIN, json={"name": "nora", "password": NEW_PASSWORD})
        assert new.status_code == 200
    audit = (await client.get("/api/monitoring/audit", params={"actor": "nora"})).text
    assert "/auth/password" in audit and NEW_PASSWORD not in audit and PASSWORD not in audit


async def test_guessing_the_current_password_is_throttled(
    client: httpx.AsyncClient, gateway: Gateway
) -> None:
    await create_user(client, "otto", "responder", PASSWORD)
    async with signed_in(gateway, "otto") as stolen:
        body = {"new_password": NEW_PASSWORD}
        statuses = [
            (
                await stolen.post(
                    CHANGE, json={**body, "current_password": f"guess {i}"}, headers=csrf(stolen)
                )
            ).status_code
            for i in range(7)
        ]
        assert statuses[:5] == [403] * 5 and 429 in statuses[5:], statuses
        right = await stolen.post(
            CHANGE, json={**body, "current_password": PASSWORD}, headers=csrf(stolen)
        )
        assert right.status_code == 429 and int(right.headers["Retry-After"]) >= 1


async def test_an_api_key_has_no_password_to_change(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        CHANGE, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert answer.status_code == 409 and "API key" in answer.json()["detail"]


@pytest.fixture
async def served(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    await eventually(lambda: gateway.http.started)
    base = f"http://127.0.0.1:{gateway.runtime.settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0, headers=ADMIN) as http:
        yield http


async def drained(response: httpx.Response) -> None:
    async for _ in response.aiter_bytes():
        pass


async def test_a_live_stream_ends_with_its_key_or_session(served: httpx.AsyncClient) -> None:
    key = await create_key(served, "screen", "viewer")
    await create_user(served, "lena", "viewer", PASSWORD)
    base = str(served.base_url)
    async with (
        httpx.AsyncClient(base_url=base, headers=bearer(key["key"])) as screen,
        httpx.AsyncClient(base_url=base) as browser,
    ):
        login = await browser.post(LOGIN, json={"name": "lena", "password": PASSWORD})
        assert login.status_code == 200
        async with (
            screen.stream("GET", EVENTS) as by_key,
            browser.stream("GET", EVENTS) as by_session,
        ):
            assert by_key.status_code == by_session.status_code == 200
            ending = [asyncio.create_task(drained(r)) for r in (by_key, by_session)]
            await asyncio.sleep(1.5)
            assert not any(task.done() for task in ending)  # they stay open while valid
            revoked = await served.delete(f"/api/monitoring/keys/{key['id']}")
            assert revoked.status_code == 204
            removed = await served.delete("/api/monitoring/users/lena")
            assert removed.status_code == 204
            await asyncio.wait_for(asyncio.gather(*ending), timeout=5.0)
