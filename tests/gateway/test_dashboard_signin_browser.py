"""Signing in to the dashboard in a real browser, under the dashboard's Content-Security-Policy:
the sign-in form, what each role is offered, signing out, changing one's password, and the
one-time setup link of a fresh install.

The gateway runs with its real identity section over HTTP; alerts come from the real
alerts service, fed by a sample POSTed to the gateway.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
)

from services.alerts.app import build as build_alerts
from services.gateway.app import Gateway, build_gateway
from services.gateway.identity.authenticator import CSRF_COOKIE, SESSION_COOKIE
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.browser import BROWSER_MARKS, WATCH_VIOLATIONS, chromium
from tests.gateway.identities import ADMIN
from tests.waiting import eventually

API = "/api/monitoring"
WAIT_MS = 15_000
PASSWORD = "correct horse battery"

pytestmark = BROWSER_MARKS


@dataclass
class Watch:
    """What the pages reported as errors: console errors (with the URL) and uncaught ones."""

    errors: list[str] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url', '')})")

    def unexpected(self, *refusals: tuple[int, str]) -> list[str]:
        """The errors besides the browser's note of each expected refused request
        (status, path); each expected one must be there."""
        left = list(self.errors)
        for status, path in refusals:
            found = next((e for e in left if f"status of {status}" in e and path in e), None)
            assert found is not None, (status, path, self.errors)
            left.remove(found)
        return [e for e in left if not any(f"status of {s}" in e and p in e for s, p in refusals)]

    async def violations(self) -> list[str]:
        found: list[str] = []
        for page in self.pages:
            if not page.is_closed():
                found.extend(await page.evaluate("window.__violations || []"))
        return found


@dataclass
class Site:
    gateway: Gateway
    settings: Settings
    admin: httpx.AsyncClient

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    async def add_user(self, name: str, role: str, password: str = PASSWORD) -> None:
        response = await self.admin.post(
            f"{API}/users", json={"name": name, "role": role, "password": password}
        )
        assert response.status_code == 201, response.text


async def serve(settings: Settings, start_service: RuntimeFactory) -> Gateway:
    gateway = build_gateway(settings)
    await start_service(gateway.runtime)
    await eventually(lambda: gateway.http.started, what="the HTTP server to listen")
    return gateway


@pytest.fixture
async def site(gateway_settings: Settings, start_service: RuntimeFactory) -> AsyncIterator[Site]:
    """The gateway over HTTP with the alerts service; an admin's API client."""
    gateway = await serve(gateway_settings, start_service)
    await start_service(build_alerts(gateway_settings))
    base = f"http://127.0.0.1:{gateway_settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0, headers=ADMIN) as admin:
        yield Site(gateway, gateway_settings, admin)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def watch() -> Watch:
    return Watch()


async def new_context(browser: Browser, watch: Watch) -> BrowserContext:
    """A browser profile of its own (no credentials of any kind to begin with)."""
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    await context.add_init_script(WATCH_VIOLATIONS)
    return context


async def open_page(context: BrowserContext, watch: Watch, url: str) -> Page:
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("console", watch.on_console)
    page.on("pageerror", lambda error: watch.errors.append(f"uncaught: {error.message}"))
    watch.pages.append(page)
    response = await page.goto(url)
    assert response is not None and response.status == 200
    return page


async def sign_in(page: Page, name: str, password: str = PASSWORD) -> None:
    form = page.locator("#signin-form")
    await expect(form).to_be_visible()
    await form.get_by_label("Name").fill(name)
    await form.get_by_label("Password").fill(password)
    await form.get_by_role("button", name="Sign in").click()


async def signed_in_as(page: Page, name: str, role: str) -> None:
    await expect(page.locator("#account-name")).to_have_text(name)
    await expect(page.locator("#account-role")).to_have_text(role)
    await expect(page.locator("#signin")).to_be_hidden()
    await expect(page.locator("#live")).to_have_text("live")


async def page_fetch(page: Page, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """A request the page's own script could make, with the session and its CSRF token."""
    answer: dict[str, Any] = await page.evaluate(
        """async ([method, url, body]) => {
            const response = await fetch(url, {
              method,
              headers: {"Content-Type": "application/json", ...VigilAuth.csrfHeaders(method)},
              body: body == null ? undefined : JSON.stringify(body),
            });
            return {status: response.status, body: await response.json().catch(() => null)};
        }""",
        [method, f"{API}{path}", body],
    )
    return answer


async def fire_alert(site: Site) -> str:
    posted = await site.admin.post(
        f"{API}/metrics",
        json=[{"name": "system_cpu_percent", "value": 97.0, "labels": {"host": "web-1"}}],
    )
    assert posted.status_code == 202, posted.text

    async def fired() -> str | None:
        items = (await site.admin.get(f"{API}/alerts", params={"status": "firing"})).json()
        return items["items"][0]["id"] if items["items"] else None

    alert_id: str = await eventually(fired, what="the alert to fire")
    return alert_id


async def drained(response: httpx.Response) -> None:
    async for _ in response.aiter_bytes():
        pass


async def assert_clean(watch: Watch, *refusals: tuple[int, str]) -> None:
    assert await watch.violations() == []
    assert watch.unexpected(*refusals) == []


async def test_a_responder_signs_in_and_acknowledges_an_alert(
    site: Site, browser: Browser, watch: Watch
) -> None:
    await site.add_user("rita", "responder")
    alert_id = await fire_alert(site)
    context = await new_context(browser, watch)
    page = await open_page(context, watch, f"{site.url}/monitoring")

    # nothing of the dashboard shows before signing in
    await expect(page.locator("#signin-form")).to_be_visible()
    await expect(page.locator("#dashboard")).to_be_hidden()
    await expect(page.get_by_role("tab", name="Alerts")).to_be_hidden()
    await sign_in(page, "rita")
    await signed_in_as(page, "rita", "responder")
    await expect(page.locator("#sign-out")).to_be_visible()

    await page.get_by_role("tab", name="Alerts").click()
    row = page.locator(f'#alert-rows tr[data-alert="{alert_id}"]')
    await expect(row.locator(".badge").nth(1)).to_have_text("firing")
    await page.locator("#alert-status").select_option("")
    await row.get_by_role("button", name="Acknowledge").click()
    await expect(row.locator(".badge").nth(1)).to_have_text("acknowledged")
    alert = (await site.admin.get(f"{API}/alerts/{alert_id}")).json()
    assert (alert["status"], alert["acknowledged_by"]) == ("acknowledged", "rita")
    # the session cookie is the browser's secret: the page's script cannot read it
    cookies = await page.evaluate("document.cookie")
    assert CSRF_COOKIE in cookies and SESSION_COOKIE not in cookies
    await assert_clean(watch, (401, f"{API}/auth/me"))


async def test_a_viewer_is_offered_no_writes_and_a_forced_one_is_refused(
    site: Site, browser: Browser, watch: Watch
) -> None:
    await site.add_user("vic", "viewer")
    alert_id = await fire_alert(site)
    context = await new_context(browser, watch)
    page = await open_page(context, watch, f"{site.url}/")
    await sign_in(page, "vic")
    await signed_in_as(page, "vic", "viewer")

    await page.get_by_role("tab", name="Alerts").click()
    row = page.locator(f'#alert-rows tr[data-alert="{alert_id}"]')
    await expect(row.locator(".badge").nth(1)).to_have_text("firing")
    await expect(row.get_by_role("button")).to_have_count(0)
    await page.get_by_role("tab", name="Incidents").click()
    await expect(page.locator("#incidents-empty")).to_be_visible()
    await expect(page.locator("#open-incident")).to_be_hidden()

    # the server does not take the page's word for it
    forced = await page_fetch(page, "POST", f"/alerts/{alert_id}/ack", {})
    assert forced["status"] == 403, forced
    assert "responder" in forced["body"]["detail"]
    alert = (await site.admin.get(f"{API}/alerts/{alert_id}")).json()
    assert alert["status"] == "firing"
    await assert_clean(watch, (401, f"{API}/auth/me"), (403, "/ack"))


async def test_a_wrong_password_is_shown_and_repeated_guesses_are_told_to_wait(
    site: Site, browser: Browser, watch: Watch
) -> None:
    await site.add_user("wanda", "responder")
    context = await new_context(browser, watch)
    page = await open_page(context, watch, f"{site.url}/")
    error = page.locator("#signin-error")

    await sign_in(page, "wanda", "not the password")
    await expect(error).to_have_text("name or password is wrong")
    await expect(page.locator("#dashboard")).to_be_hidden()
    await expect(page.locator("#signin-form").get_by_label("Name")).to_have_value("wanda")

    # a few more wrong guesses, and the server asks for a pause: the page says how long
    waits = re.compile(r"Too many attempts\. Try again in \d+ (second|minute)s?\.")
    for _ in range(8):
        await sign_in(page, "wanda", "still not the password")
        await expect(error).not_to_have_text("")
        if waits.fullmatch(await error.inner_text() or ""):
            break
    await expect(error).to_have_text(waits)
    assert (await page.context.request.get(f"{site.url}{API}/auth/me")).status == 401
    refused = [e for e in watch.errors if "/auth/login" in e]
    assert any("status of 429" in e for e in refused), watch.errors
    await assert_clean(watch, (401, f"{API}/auth/me"), (401, "/auth/login"), (429, "/auth/login"))


async def test_signing_out_ends_the_session(site: Site, browser: Browser, watch: Watch) -> None:
    await site.add_user("sam", "viewer")
    context = await new_context(browser, watch)
    page = await open_page(context, watch, f"{site.url}/")
    await sign_in(page, "sam")
    await signed_in_as(page, "sam", "viewer")
    session = next(c["value"] for c in await context.cookies() if c["name"] == SESSION_COOKIE)
    copied = httpx.AsyncClient(base_url=site.url, cookies={SESSION_COOKIE: session})

    async with copied, copied.stream("GET", f"{API}/events") as live:
        assert live.status_code == 200
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.locator("#signin-notice")).to_have_text("You have signed out.")
        await expect(page.locator("#dashboard")).to_be_hidden()
        await expect(page.locator("#account")).to_be_hidden()
        assert SESSION_COOKIE not in {c["name"] for c in await context.cookies()}
        # the session is over on the server, not just forgotten by this browser: a copy
        # of its cookie is refused, and a live stream opened with it ends
        assert (await copied.get(f"{API}/auth/me")).status_code == 401
        await asyncio.wait_for(drained(live), timeout=5.0)
    await page.reload()
    await expect(page.locator("#signin-form")).to_be_visible()
    await assert_clean(watch, (401, f"{API}/auth/me"), (401, f"{API}/auth/me"))


async def test_a_user_changes_their_password_and_their_other_sessions_end(
    site: Site, browser: Browser, watch: Watch
) -> None:
    await site.add_user("pat", "responder")
    here, there = await new_context(browser, watch), await new_context(browser, watch)
    page = await open_page(here, watch, f"{site.url}/")
    other = await open_page(there, watch, f"{site.url}/")
    for each in (page, other):
        await sign_in(each, "pat")
        await signed_in_as(each, "pat", "responder")

    await page.get_by_role("button", name="Change password").click()
    dialog = page.locator("#password-dialog")
    await dialog.get_by_label("Current password").fill("a wrong password")
    await dialog.get_by_label("New password", exact=True).fill("a brand new secret")
    await dialog.get_by_label("New password again").fill("a brand new secret")
    await dialog.get_by_role("button", name="Change password").click()
    await expect(dialog.locator("#password-error")).to_contain_text("current_password")
    await dialog.get_by_label("Current password").fill(PASSWORD)
    await dialog.get_by_role("button", name="Change password").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#notice")).to_contain_text("Password changed")

    # this browser stays signed in (a new session, a new CSRF token) and can still act
    alert_id = await fire_alert(site)
    await page.get_by_role("tab", name="Alerts").click()
    row = page.locator(f'#alert-rows tr[data-alert="{alert_id}"]')
    await row.get_by_role("button", name="Acknowledge").click()
    await expect(row).to_have_count(0)  # no longer firing
    alert = (await site.admin.get(f"{API}/alerts/{alert_id}")).json()
    assert (alert["status"], alert["acknowledged_by"]) == ("acknowledged", "pat")
    # the other browser's session ended: its live stream ends and its next request is
    # refused, and the page asks to sign in again
    await expect(other.locator("#signin-form")).to_be_visible()
    await expect(other.locator("#signin-notice")).to_have_text(
        "Your session has ended. Sign in again."
    )
    await sign_in(other, "pat", PASSWORD)
    await expect(other.locator("#signin-error")).to_have_text("name or password is wrong")
    await sign_in(other, "pat", "a brand new secret")
    await signed_in_as(other, "pat", "responder")
    await assert_clean(
        watch,
        (401, f"{API}/auth/me"),
        (401, f"{API}/auth/me"),
        (403, "/auth/password"),
        (401, f"{API}/"),
        (401, "/auth/login"),
    )


async def test_the_setup_link_creates_the_first_admin_and_signs_in(
    gateway_settings: Settings,
    start_service: RuntimeFactory,
    browser: Browser,
    watch: Watch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = gateway_settings.model_copy(update={"bootstrap_admin_key": None})
    await serve(settings, start_service)
    printed = capsys.readouterr().out
    link = re.search(r"http://\S+/monitoring/setup#token=\S+", printed)
    assert link is not None, printed
    token = link.group(0).split("#token=", 1)[1]
    context = await new_context(browser, watch)

    # without its token the page says what it needs, and offers nothing to submit
    bare = await open_page(context, watch, link.group(0).split("#", 1)[0])
    await expect(bare.locator("#setup-missing")).to_be_visible()
    await expect(bare.get_by_role("button", name="Create administrator")).to_be_disabled()

    page = await open_page(context, watch, link.group(0))
    await expect(page).to_have_title(re.compile("first administrator"))
    form = page.locator("#setup-form")
    await form.get_by_label("Name").fill("root")
    await form.get_by_label("Password", exact=True).fill(PASSWORD)
    await form.get_by_label("Password again").fill("a different one!")
    await form.get_by_role("button", name="Create administrator").click()
    await expect(page.locator("#setup-error")).to_have_text("The passwords differ.")
    await form.get_by_label("Password again").fill(PASSWORD)
    await form.get_by_role("button", name="Create administrator").click()

    await expect(page).to_have_url(f"http://127.0.0.1:{settings.port}/monitoring")
    await signed_in_as(page, "root", "admin")
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    users = await page_fetch(page, "GET", "/users")
    assert [(u["name"], u["role"]) for u in users["body"]["items"]] == [("root", "admin")]

    # the link is spent: opened again, it says setup is closed and points to signing in
    again = await open_page(context, watch, link.group(0))
    again_form = again.locator("#setup-form")
    await again_form.get_by_label("Name").fill("eve")
    await again_form.get_by_label("Password", exact=True).fill(PASSWORD)
    await again_form.get_by_label("Password again").fill(PASSWORD)
    await again_form.get_by_role("button", name="Create administrator").click()
    await expect(again.locator("#setup-error")).to_contain_text("setup is closed")
    await expect(again.get_by_role("link", name="Sign in instead.")).to_be_visible()
    assert token not in "".join(watch.errors)
    await assert_clean(watch, (409, "/auth/setup"))
