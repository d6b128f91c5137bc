"""The dashboard in a real browser, in front of all six services on one NATS server.

Data takes the real path: a sample POSTed to the gateway is stored on METRICS, the alerts
service fires an alert, the incidents service opens an incident for it, and the gateway's
projections push both to the page over the live stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    expect,
)

from services.alerts.app import build as build_alerts
from services.gateway.app import Gateway
from services.incidents.app import build as build_incidents
from services.metrics.app import build as build_metrics
from services.notifier.app import build as build_notifier
from services.synthetic.app import build as build_synthetic
from shared.natsserver import free_port
from shared.services import SERVICES
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.gateway.browser import BROWSER_MARKS, chromium
from tests.gateway.identities import ADMIN, ADMIN_ACTOR, with_admin_key
from tests.waiting import eventually

API = "/api/monitoring"
WAIT_MS = 10_000

pytestmark = BROWSER_MARKS


@dataclass
class Console:
    """Everything the page reported as an error: console errors and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url', '')})")

    def on_page_error(self, error: Error) -> None:
        self.errors.append(f"uncaught: {error.message}")


@pytest.fixture
def gateway_settings(settings: Settings) -> Settings:
    """A slower heartbeat than the default test one, so that a browser busy on a shared
    CPU cannot make a service look down (down = three missed beats)."""
    return with_admin_key(
        settings.model_copy(update={"port": free_port(), "heartbeat_interval_s": 1.0})
    )


@pytest.fixture
async def system(
    gateway: Gateway, gateway_settings: Settings, start_service: RuntimeFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway over HTTP with the five other services; a client of that server."""
    for build in (build_metrics, build_alerts, build_incidents, build_synthetic, build_notifier):
        await start_service(build(gateway_settings))
    await eventually(lambda: gateway.http.started)
    base = f"http://127.0.0.1:{gateway_settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0, headers=ADMIN) as http:

        async def all_up() -> bool:
            services = (await http.get(f"{API}/health/dashboard")).json()["services"]
            return all(services[name]["status"] == "up" for name in SERVICES)

        await eventually(all_up, within_s=10)
        yield http


@pytest.fixture
async def browser(system: httpx.AsyncClient) -> AsyncIterator[Browser]:
    """Closed before the services stop, so the page never sees the server go away."""
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def dashboard(
    browser: Browser, system: httpx.AsyncClient
) -> AsyncIterator[tuple[Page, Console]]:
    """The dashboard open at the overview, its live stream connected."""
    # the page calls the API with the admin's key, as a browser does once logged in
    context = await browser.new_context(
        viewport={"width": 1400, "height": 900}, extra_http_headers=ADMIN
    )
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    console = Console()
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)
    await page.goto(str(system.base_url))
    await expect(page.locator("#live")).to_have_text("live")
    yield page, console
    await context.close()


async def api_get(http: httpx.AsyncClient, path: str) -> Any:
    response = await http.get(f"{API}{path}")
    assert response.status_code == 200, response.text
    return response.json()


async def test_an_operator_works_an_alert_and_its_incident_from_the_dashboard(
    dashboard: tuple[Page, Console], system: httpx.AsyncClient, tmp_path: Path
) -> None:
    page, console = dashboard

    # the overview: empty counts, and every service reporting in
    for card in ("firing", "acknowledged", "critical", "incidents", "checks-failing"):
        await expect(page.locator(f"#count-{card}")).to_have_text("0")
    services = page.locator("#services tr")
    await expect(services).to_have_count(len(SERVICES))
    await expect(services.locator("td:first-child")).to_have_text(list(SERVICES))
    await expect(services.locator("td:nth-child(2)")).to_have_text(["up"] * len(SERVICES))

    # an alert that fires while the page is open shows up without a reload
    await page.evaluate("window.openedOnce = true")
    await page.get_by_role("tab", name="Alerts").click()
    await expect(page.locator("#alerts-empty")).to_be_visible()
    posted = await system.post(
        f"{API}/metrics",
        json=[{"name": "system_cpu_percent", "value": 97.0, "labels": {"host": "web-1"}}],
    )
    assert posted.status_code == 202
    row = page.locator("#alert-rows tr", has_text="HighCPU")
    await expect(row).to_have_count(1)
    await expect(row.locator(".badge").first).to_have_text("critical")
    await expect(row).to_contain_text("host=web-1")
    await expect(row).to_contain_text("97 / 90")
    await expect(row.locator(".badge").nth(1)).to_have_text("firing")
    assert await page.evaluate("window.openedOnce") is True  # no reload happened
    alert_id = await row.get_attribute("data-alert")
    assert alert_id

    # acknowledging it from the page
    await page.locator("#alert-status").select_option("")
    await row.get_by_role("button", name="Acknowledge").click()
    await expect(row.locator(".badge").nth(1)).to_have_text("acknowledged")
    await expect(row.get_by_role("button", name="Acknowledge")).to_have_count(0)
    alert = await api_get(system, f"/alerts/{alert_id}")
    assert (alert["status"], alert["acknowledged_by"]) == ("acknowledged", ADMIN_ACTOR)

    # the overview counts what happened, and the feed shows the live events
    await page.get_by_role("tab", name="Overview").click()
    await expect(page.locator("#count-firing")).to_have_text("0")
    await expect(page.locator("#count-acknowledged")).to_have_text("1")
    await expect(page.locator("#count-critical")).to_have_text("1")
    await expect(page.locator("#count-incidents")).to_have_text("1")
    await expect(page.locator("#incident-status li")).to_have_text(["investigating 1"])
    feed = page.locator("#feed li")
    await expect(feed.filter(has_text="AlertFired")).to_have_count(1)
    await expect(feed.filter(has_text="AlertAcknowledged")).to_have_count(1)
    await expect(feed.filter(has_text="IncidentOpened")).to_have_count(1)
    await page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

    # the incident the critical alert opened, worked from the page
    await page.get_by_role("tab", name="Incidents").click()
    title = "HighCPU: system_cpu_percent{host=web-1} is critical"
    incident_row = page.locator("#incident-rows tr", has_text=title)
    await expect(incident_row).to_have_count(1)
    await expect(incident_row.locator(".badge").nth(1)).to_have_text("investigating")
    await incident_row.click()
    detail = page.locator("#incident-detail")
    await expect(detail.locator("#incident-title")).to_have_text(title)
    incident_id = (await api_get(system, "/incidents"))["items"][0]["id"]

    status_form = page.locator("#incident-status-form")
    await status_form.locator("select").select_option("identified")
    await status_form.locator("input[name=message]").fill("runaway worker")
    await status_form.get_by_role("button", name="Change status").click()
    await expect(detail.locator("#incident-meta .badge").nth(1)).to_have_text("identified")
    await expect(incident_row.locator(".badge").nth(1)).to_have_text("identified")
    timeline = detail.locator("#incident-timeline li")
    await expect(timeline.filter(has_text="IncidentStatusChanged")).to_contain_text(
        f"by {ADMIN_ACTOR} — runaway worker"
    )
    assert (await api_get(system, f"/incidents/{incident_id}"))["status"] == "identified"

    note_form = page.locator("#incident-note-form")
    await note_form.locator("input[name=text]").fill("restarted the worker on web-1")
    await note_form.get_by_role("button", name="Add note").click()
    await expect(detail.locator("#incident-notes li")).to_contain_text(
        ["restarted the worker on web-1"]
    )
    await expect(timeline.filter(has_text="IncidentNoteAdded")).to_contain_text(
        "restarted the worker on web-1"
    )
    notes = (await api_get(system, f"/incidents/{incident_id}"))["notes"]
    assert [(n["author"], n["text"]) for n in notes] == [
        (ADMIN_ACTOR, "restarted the worker on web-1")
    ]

    # a refused action is shown in the page, and the page keeps the real state
    await status_form.locator("select").select_option("resolved")
    await status_form.get_by_role("button", name="Change status").click()
    await expect(detail.locator("#incident-meta .badge").nth(1)).to_have_text("resolved")
    await expect(page.locator("#error")).to_be_hidden()
    await status_form.locator("select").select_option("monitoring")
    await status_form.get_by_role("button", name="Change status").click()
    error = page.locator("#error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("cannot go from resolved to monitoring")
    await expect(detail.locator("#incident-meta .badge").nth(1)).to_have_text("resolved")
    assert (await api_get(system, f"/incidents/{incident_id}"))["status"] == "resolved"

    # the only thing the browser complained about is the refused request itself
    refused = [e for e in console.errors if "status of 409" in e and "/status" in e]
    assert len(refused) == 1, console.errors
    assert [e for e in console.errors if e not in refused] == []


async def test_an_incident_opened_from_the_dashboard_can_be_worked_there(
    dashboard: tuple[Page, Console], system: httpx.AsyncClient
) -> None:
    page, console = dashboard
    await page.get_by_role("tab", name="Incidents").click()
    await expect(page.locator("#incidents-empty")).to_be_visible()

    opener = page.locator("#open-incident")
    await opener.locator("input[name=title]").fill("checkout is slow")
    await opener.locator("select").select_option("critical")
    await opener.get_by_role("button", name="Open incident").click()

    row = page.locator("#incident-rows tr", has_text="checkout is slow")
    await expect(row).to_have_count(1)
    await expect(row).to_have_class("selected clickable")
    await expect(page.locator("#incident-title")).to_have_text("checkout is slow")
    await expect(page.locator("#incident-meta")).to_contain_text(f"by {ADMIN_ACTOR}")
    await expect(opener.locator("input[name=title]")).to_have_value("")
    incidents = (await api_get(system, "/incidents"))["items"]
    assert [(i["title"], i["severity"], i["status"]) for i in incidents] == [
        ("checkout is slow", "critical", "investigating")
    ]

    # asking for the status it already has is refused, and says so
    await page.locator("#incident-status-form").get_by_role("button", name="Change status").click()
    await expect(page.locator("#error")).to_contain_text("already investigating")

    # the next good action clears the message
    await page.locator("#incident-status-form select").select_option("monitoring")
    await page.locator("#incident-status-form").get_by_role("button", name="Change status").click()
    await expect(row.locator(".badge").nth(1)).to_have_text("monitoring")
    await expect(page.locator("#error")).to_be_hidden()

    # and the overview, reached by the tab, agrees
    await page.get_by_role("tab", name="Overview").click()
    await expect(page.locator("#count-incidents")).to_have_text("1")
    await expect(page.locator("#incident-status li")).to_have_text(["monitoring 1"])

    refused = [e for e in console.errors if "status of 409" in e]
    assert len(refused) == 1, console.errors
    assert [e for e in console.errors if e not in refused] == []
