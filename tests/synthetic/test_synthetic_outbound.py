"""The synthetic service, as it runs, behind the outbound guard: checks aimed at Vigil
itself or at the cloud metadata address are refused, every redirect hop is checked, a
state-changing method needs an admin's say-so, and error texts carry no target bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from yarl import URL

from services.synthetic.app import build
from shared.bus import EventBus
from shared.commands import CONFIGURE_CHECK, RUN_CHECK
from shared.config import CheckConfig, ConfigError, OutboundConfig, VigilConfig, parse_config
from shared.errors import InvalidInput
from shared.natsserver import EmbeddedNats
from shared.settings import Settings
from tests.conftest import RuntimeFactory
from tests.outbound_servers import (
    BANNER_SECRET,
    METADATA_URLS,
    HttpServer,
    banner_server,
    http_server,
    loopback_urls,
)

REFUSED = "connection refused by the outbound policy: "


@pytest.fixture
async def gateway() -> AsyncIterator[HttpServer]:
    """Stands in for the gateway on its port; the gateway's routes would resolve alerts."""
    async with http_server() as server:
        yield server


@pytest.fixture
async def target() -> AsyncIterator[HttpServer]:
    async with http_server() as server:
        yield server


@pytest.fixture
def vigil_settings(settings: Settings, gateway: HttpServer) -> Settings:
    """The process settings as `vigil up` gives them: VIGIL_PORT and NATS_URL."""
    return settings.model_copy(update={"port": gateway.port})


async def run(bus: EventBus, url: str, method: str = "GET", **extra: Any) -> dict[str, Any]:
    """Configure a (disabled, so only run on request) check at ``url`` and run it once."""
    check = {"name": "probe", "url": url, "method": method, "enabled": False, "timeout_s": 3}
    configured = await bus.request(CONFIGURE_CHECK, check | extra)
    return dict(await bus.request(RUN_CHECK, {"check_id": configured["aggregate_id"]}))


async def test_checks_aimed_at_vigil_or_metadata_are_refused(
    vigil_settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    gateway: HttpServer,
    target: HttpServer,
    nats_server: EmbeddedNats,
) -> None:
    await start_service(build(vigil_settings, VigilConfig()))
    resolve = "/api/monitoring/alerts/a-1/resolve"
    aims = {
        **{f"gateway via {h}": u for h, u in loopback_urls(gateway.port, resolve).items()},
        **{f"NATS via {h}": u for h, u in loopback_urls(nats_server.port).items()},
        **{u: u for u in METADATA_URLS},
    }
    for what, url in aims.items():
        reply = await run(bus, url)
        assert (reply["ok"], reply["status_code"]) == (False, None), what
        assert reply["error"].startswith(REFUSED), (what, reply["error"])
    nats_reply = await run(bus, f"http://127.0.0.1:{nats_server.port}/")
    assert nats_reply["error"] == (
        REFUSED + f"127.0.0.1:{nats_server.port} is Vigil's own NATS port"
    )
    assert "INFO" not in nats_reply["error"]
    assert gateway.hits == []

    ordinary = await run(bus, f"{target.url}/health")
    assert (ordinary["ok"], ordinary["status_code"], ordinary["error"]) == (True, 200, "")


async def test_a_redirect_to_vigil_is_refused_at_the_hop(
    vigil_settings: Settings,
    bus: EventBus,
    start_service: RuntimeFactory,
    gateway: HttpServer,
    target: HttpServer,
) -> None:
    await start_service(build(vigil_settings, VigilConfig()))
    for spelling, aim in loopback_urls(gateway.port, "/api/monitoring/alerts/a-1/ack").items():
        hop = URL(f"{target.url}/redirect").with_query(status=307, to=aim)
        reply = await run(bus, str(hop))
        assert reply["error"].startswith(REFUSED), (spelling, reply["error"])
        assert reply["error"].endswith("is Vigil's own gateway port")
    metadata = URL(f"{target.url}/redirect").with_query(to="http://169.254.169.254/")
    assert (await run(bus, str(metadata)))["error"] == (
        REFUSED + "169.254.169.254 is link-local (cloud metadata)"
    )
    assert gateway.hits == []
    elsewhere = URL(f"{target.url}/redirect").with_query(to=f"{target.url}/landed")
    followed = await run(bus, str(elsewhere))
    assert (followed["ok"], followed["status_code"]) == (True, 200)
    assert target.hits[-1] == "/landed"


async def test_the_files_outbound_section_applies(
    vigil_settings: Settings, bus: EventBus, start_service: RuntimeFactory, target: HttpServer
) -> None:
    config = VigilConfig(outbound=OutboundConfig(deny=["127.0.0.0/8", "::1/128"]))
    await start_service(build(vigil_settings, config))
    for spelling, url in loopback_urls(target.port).items():
        reply = await run(bus, url)
        assert reply["error"].startswith(REFUSED), (spelling, reply["error"])
        assert "is in the denied range" in reply["error"], spelling
    assert target.hits == []


async def test_the_environments_outbound_lists_apply(
    vigil_settings: Settings, bus: EventBus, start_service: RuntimeFactory, target: HttpServer
) -> None:
    settings = vigil_settings.model_copy(update={"outbound_deny": ["::1/128", "127.0.0.0/8"]})
    await start_service(build(settings, VigilConfig()))
    reply = await run(bus, f"http://localhost:{target.port}/")
    assert "is in the denied range" in reply["error"]
    assert target.hits == []


async def test_a_state_changing_method_needs_an_admins_say_so(
    vigil_settings: Settings, bus: EventBus, start_service: RuntimeFactory, target: HttpServer
) -> None:
    await start_service(build(vigil_settings, VigilConfig()))
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        with pytest.raises(InvalidInput) as refused:
            await run(bus, target.url, method)
        assert refused.value.field == "method"
        assert "allow_unsafe_method" in refused.value.message
    assert target.hits == []

    reply = await run(bus, f"{target.url}/hook", "POST", allow_unsafe_method=True)
    assert (reply["ok"], reply["status_code"]) == (True, 200)
    assert target.methods == ["POST"]
    head = await run(bus, target.url, "HEAD")
    assert head["ok"] is True


def test_the_file_says_so_explicitly_too() -> None:
    with pytest.raises(ConfigError, match=r"checks\[0\]: .*allow_unsafe_method"):
        parse_config("checks:\n  - name: hook\n    url: http://example.com/\n    method: POST\n")
    allowed = parse_config(
        "checks:\n  - name: hook\n    url: http://example.com/\n    method: POST\n"
        "    allow_unsafe_method: true\n"
    )
    assert allowed.checks[0] == CheckConfig(
        name="hook", url="http://example.com/", method="POST", allow_unsafe_method=True
    )


async def test_an_error_never_echoes_what_the_target_sent(
    vigil_settings: Settings, bus: EventBus, start_service: RuntimeFactory
) -> None:
    await start_service(build(vigil_settings, VigilConfig()))
    async with banner_server() as url:
        reply = await run(bus, url)
    assert (reply["ok"], reply["error"]) == (False, "invalid HTTP response")
    assert BANNER_SECRET not in str(reply)
