"""The HTTP surface in a real browser: the dashboard and the API documentation work under
their Content-Security-Policy with no internet access, a page on another origin cannot
act through an operator's browser, and a rebound name is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import nats.js.errors
import pytest
from aiohttp import web
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    expect,
)

from services.incidents.app import build as build_incidents
from shared.natsserver import free_port
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.browser import BROWSER_MARKS, WATCH_VIOLATIONS, chromium
from tests.gateway.surface_server import Answered, Served, serve
from tests.waiting import eventually

REBOUND = "rebound.test"  # a name the browser resolves to 127.0.0.1, as after DNS rebinding
WAIT_MS = 15_000

pytestmark = BROWSER_MARKS


@dataclass
class Watch:
    """What a page did wrong: console errors, uncaught errors, requests off this machine."""

    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    async def only_local(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname in ("127.0.0.1", REBOUND):
            await route.continue_()
        else:  # no internet here: whatever a page asks from elsewhere is recorded, not fetched
            self.outside.append(route.request.url)
            await route.abort()


@pytest.fixture
async def served(gateway_settings: Settings, start_service: RuntimeFactory) -> Served:
    served = await serve(gateway_settings, start_service)
    await start_service(build_incidents(gateway_settings))
    return served


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium(f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1") as launched:
        yield launched


def operator_headers(settings: Settings) -> dict[str, str]:
    """An operator's credentials where the gateway asks for them."""
    key = getattr(settings, "bootstrap_admin_key", None)
    return {"Authorization": f"Bearer {key}"} if key else {}


@pytest.fixture
async def context(browser: Browser, served: Served) -> AsyncIterator[tuple[BrowserContext, Watch]]:
    context = await browser.new_context(extra_http_headers=operator_headers(served.settings))
    watch = Watch()
    await context.add_init_script(WATCH_VIOLATIONS)
    await context.route("**/*", watch.only_local)
    try:
        yield context, watch
    finally:
        await context.close()


async def open_page(context: BrowserContext, watch: Watch, url: str) -> Page:
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("console", watch.on_console)
    page.on("pageerror", lambda error: watch.errors.append(f"uncaught: {error.message}"))
    response = await page.goto(url)
    assert response is not None and response.status == 200
    return page


async def assert_clean(page: Page, watch: Watch) -> None:
    violations = await page.evaluate("window.__violations")
    assert violations == [], "\n".join(violations)
    assert watch.errors == []
    assert watch.outside == []


async def test_the_dashboard_works_under_its_policy(
    context: tuple[BrowserContext, Watch], served: Served
) -> None:
    browser_context, watch = context
    page = await open_page(browser_context, watch, f"{served.url}/")
    await expect(page.locator("#live")).to_have_text("live")
    # the stylesheet applies: the panels it hides are hidden, the header is laid out
    assert (
        await page.locator("header.topbar").evaluate("e => getComputedStyle(e).display") == "flex"
    )
    for tab in ("Alerts", "Incidents", "Synthetic checks", "Overview"):
        await page.get_by_role("tab", name=tab).click()
    # a write from the page itself: same origin, JSON, through the content-type check
    await page.get_by_role("tab", name="Incidents").click()
    form = page.locator("#open-incident")
    await form.locator("input[name=title]").fill("Checkout slow for EU users")
    await form.get_by_role("button", name="Open incident").click()
    row = page.locator("#incident-rows tr", has_text="Checkout slow for EU users")
    await expect(row).to_have_count(1)
    await expect(page.locator("#error")).to_be_hidden()
    await assert_clean(page, watch)


async def test_swagger_ui_renders_offline_under_its_policy(
    context: tuple[BrowserContext, Watch], served: Served
) -> None:
    browser_context, watch = context
    page = await open_page(browser_context, watch, f"{served.url}/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Vigil")
    operations = page.locator(".opblock")
    await expect(operations.first).to_be_visible()
    assert await operations.count() > 10
    # an operation opens, with its parameters, rendered by the bundle served here
    await page.locator(".opblock-summary", has_text="/api/monitoring/alerts").first.click()
    await expect(page.locator(".opblock-body").first).to_be_visible()
    await assert_clean(page, watch)


async def test_redoc_renders_offline_under_its_policy(
    context: tuple[BrowserContext, Watch], served: Served
) -> None:
    browser_context, watch = context
    page = await open_page(browser_context, watch, f"{served.url}/redoc")
    # Redoc lays out the whole API document before its first heading: seconds on a busy
    # two-core machine
    await expect(page.locator("h1").first).to_contain_text("Vigil", timeout=30_000)
    await expect(page.get_by_role("menuitem").first).to_be_visible()
    # its injected styles took (they carry the page's nonce): the menu is laid out beside
    # the content, which unstyled markup would not be
    styled = await page.locator(".menu-content").evaluate("e => getComputedStyle(e).position")
    assert styled in ("sticky", "fixed")
    await assert_clean(page, watch)


ATTACK_PAGE = """<!doctype html>
<html><body>
<form id="form" method="POST" enctype="text/plain" action="{gateway}/api/monitoring/incidents">
  <input name='{{"title": "forged", "severity": "critical", "x": "' value='"}}'>
</form>
<script>
  const gateway = "{gateway}";
  const batch = JSON.stringify([{{"name": "forged_cpu", "value": 99}}]);
  const attempts = [
    ["/api/monitoring/metrics", {{body: batch, headers: {{"Content-Type": "text/plain"}}}}],
    ["/api/monitoring/metrics", {{body: batch}}],
    ["/api/monitoring/alerts/any-alert/ack", {{}}],
  ];
  (async () => {{
    for (const [path, init] of attempts) {{
      const options = {{...init, method: "POST", mode: "no-cors", credentials: "include"}};
      await fetch(gateway + path, options).catch(() => null);
    }}
    document.getElementById("form").submit();
  }})();
</script>
</body></html>
"""


@pytest.fixture
async def attacker(served: Served) -> AsyncIterator[str]:
    """A page on another origin (another port) that tries to act through the browser."""
    page = ATTACK_PAGE.format(gateway=served.url)

    async def handle(_: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


async def stored(served: Served, stream: str, subject: str) -> bool:
    try:
        await served.gateway.state.bus().js.get_last_msg(stream, subject)
    except nats.js.errors.NotFoundError:
        return False
    return True


async def test_a_page_elsewhere_cannot_act_through_the_browser(
    browser: Browser, served: Served, attacker: str
) -> None:
    """A form and no-cors fetches to the gateway reach it and are refused; the page cannot
    read an answer either; nothing is stored."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        page.set_default_timeout(WAIT_MS)
        await page.goto(attacker)

        def writes() -> list[Answered]:
            return [answer for answer in served.answers if answer.method == "POST"]

        await eventually(lambda: len(writes()) >= 4, what="the gateway to answer every attempt")
    finally:
        await context.close()
    assert sorted(writes(), key=str) == sorted(
        [
            Answered("POST", "/api/monitoring/metrics", 403),
            Answered("POST", "/api/monitoring/metrics", 403),
            Answered("POST", "/api/monitoring/alerts/any-alert/ack", 403),
            Answered("POST", "/api/monitoring/incidents", 403),
        ],
        key=str,
    )
    assert not await stored(served, "METRICS", "metrics.samples.api")
    assert not await stored(served, "INCIDENTS", "incidents.events.>")


async def test_a_rebound_name_is_refused(browser: Browser, served: Served) -> None:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        response = await page.goto(f"http://{REBOUND}:{served.settings.port}/")
        assert response is not None and response.status == 400
        assert "VIGIL_ALLOWED_HOSTS" in await page.content()
    finally:
        await context.close()
