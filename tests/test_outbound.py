"""The outbound guard against real sockets: a stand-in gateway and a real nats-server on
this host, targets that redirect, a server that speaks another protocol, and names that
resolve where a test says."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from yarl import URL

from shared import outbound
from shared.config import ConfigError, OutboundConfig, parse_config
from shared.natsserver import EmbeddedNats, free_port
from shared.outbound import (
    Endpoint,
    OutboundGuard,
    OutboundPolicy,
    OutboundRefused,
    describe_error,
    nats_endpoints,
)
from shared.settings import Settings
from tests.outbound_servers import (
    BANNER_SECRET,
    METADATA_URLS,
    HttpServer,
    StaticResolver,
    banner_server,
    http_server,
    loopback_urls,
)

REFUSED = "connection refused by the outbound policy: "


@dataclass
class Vigil:
    """Vigil's own listeners on this host: a stand-in gateway and a real NATS server."""

    gateway: HttpServer
    nats: EmbeddedNats
    settings: Settings


@pytest.fixture
async def vigil(nats_server: EmbeddedNats) -> AsyncIterator[Vigil]:
    async with http_server() as gateway:
        settings = Settings(port=gateway.port, nats_url=nats_server.url)
        yield Vigil(gateway, nats_server, settings)


@pytest.fixture
async def target() -> AsyncIterator[HttpServer]:
    """An ordinary service on this host, which checks may watch."""
    async with http_server() as server:
        yield server


async def fetch(
    guard: OutboundGuard,
    url: str,
    method: str = "GET",
    max_redirects: int = 5,
    **connector: object,
) -> int:
    async with (
        guard.session(**connector) as session,
        outbound.request(
            session, method, url, timeout_s=3, max_redirects=max_redirects
        ) as response,
    ):
        await response.read()
        return response.status


async def refusal(guard: OutboundGuard, url: str) -> str:
    with pytest.raises((OutboundRefused, aiohttp.ClientError)) as raised:
        await fetch(guard, url)
    return describe_error(raised.value)


# --- Vigil's own ports ----------------------------------------------------------------


async def test_every_spelling_of_the_gateway_port_is_refused(vigil: Vigil) -> None:
    guard = OutboundGuard.from_settings(vigil.settings)
    for host, url in loopback_urls(vigil.gateway.port).items():
        text = await refusal(guard, url)
        assert text.startswith(REFUSED), (host, text)
        assert text.endswith("is Vigil's own gateway port"), (host, text)
    assert vigil.gateway.hits == []


async def test_the_stand_in_gateway_is_reachable_without_the_guard(vigil: Vigil) -> None:
    """The refusals above are the guard's doing: a plain client gets through."""
    async with aiohttp.ClientSession() as session:
        for url in (
            f"http://127.0.0.1:{vigil.gateway.port}/",
            f"http://[::1]:{vigil.gateway.port}/",
        ):
            async with session.post(url) as response:
                assert response.status == 200
        async with session.get(f"http://0x7f000001:{vigil.gateway.port}/") as response:
            assert response.status == 200
    assert len(vigil.gateway.hits) == 3


async def test_every_spelling_of_the_nats_port_is_refused(vigil: Vigil) -> None:
    guard = OutboundGuard.from_settings(vigil.settings)
    for host, url in loopback_urls(vigil.nats.port).items():
        text = await refusal(guard, url)
        assert text.startswith(REFUSED), (host, text)
        assert text.endswith("is Vigil's own NATS port"), (host, text)
        assert "INFO" not in text and "server_id" not in text


async def test_names_resolving_to_vigil_are_refused(vigil: Vigil) -> None:
    resolver = StaticResolver(
        {"gateway.example.test": ["127.0.0.1"], "v6.example.test": ["::1"], "any.test": ["0.0.0.0"]}
    )
    guard = OutboundGuard.from_settings(vigil.settings, resolver_factory=lambda: resolver)
    port = vigil.gateway.port
    for name in ("gateway.example.test", "v6.example.test", "any.test", "localhost"):
        text = await refusal(guard, f"http://{name}:{port}/")
        assert text.startswith(REFUSED) and f"({name})" in text, text
        assert text.endswith("is Vigil's own gateway port")
    assert "gateway.example.test" in resolver.asked
    assert vigil.gateway.hits == []


async def test_a_remote_nats_is_refused_by_its_resolved_address() -> None:
    """Where services run apart (compose), NATS is a name on another address."""
    resolver = StaticResolver({"nats": ["10.9.9.9"], "gateway": ["10.9.9.10"]})
    settings = Settings(nats_url="nats://vigil:pw@nats:4222", outbound_protect=["gateway:8080"])
    guard = OutboundGuard.from_settings(settings, resolver_factory=lambda: resolver)
    await guard.refresh()
    refused = guard.verdict(ipaddress.ip_address("10.9.9.9"), 4222)
    assert refused is not None and refused.reason == "is Vigil's own NATS port"
    refused = guard.verdict(ipaddress.ip_address("10.9.9.10"), 8080)
    assert refused is not None and refused.reason == "is Vigil's own listening port"
    assert guard.verdict(ipaddress.ip_address("10.9.9.9"), 80) is None
    assert guard.verdict(ipaddress.ip_address("10.9.9.11"), 4222) is None


def test_nats_url_forms() -> None:
    assert nats_endpoints("nats://u:p@nats:4222, tls://10.0.0.5,nats://[::1]:4333") == [
        Endpoint("nats", 4222, "NATS"),
        Endpoint("10.0.0.5", 4222, "NATS"),
        Endpoint("::1", 4333, "NATS"),
    ]
    assert nats_endpoints(None) == []


async def test_this_hosts_own_addresses_count_for_the_own_ports() -> None:
    local = ipaddress.ip_address("192.0.2.10")
    guard = OutboundGuard(
        OutboundPolicy(own_ports={8080: "gateway"}), local_addresses=lambda: frozenset({local})
    )
    refused = guard.verdict(local, 8080)
    assert refused is not None and str(refused) == (
        REFUSED + "192.0.2.10:8080 is Vigil's own gateway port"
    )
    assert guard.verdict(local, 8081) is None
    assert guard.verdict(ipaddress.ip_address("192.0.2.11"), 8080) is None


# --- link-local and cloud metadata ---------------------------------------------------


async def test_metadata_and_link_local_are_always_refused(vigil: Vigil) -> None:
    guard = OutboundGuard.from_settings(
        vigil.settings.model_copy(update={"outbound_allow": ["0.0.0.0/0", "::/0"]})
    )
    for url in METADATA_URLS:
        text = await refusal(guard, url)
        assert text.startswith(REFUSED), (url, text)
        assert "link-local" in text or "cloud metadata" in text, (url, text)
    assert (
        await refusal(guard, "http://169.254.169.254/")
        == REFUSED + "169.254.169.254 is link-local (cloud metadata)"
    )


async def test_a_name_resolving_to_the_metadata_address_is_refused(vigil: Vigil) -> None:
    resolver = StaticResolver({"metadata.example.test": ["169.254.169.254"]})
    guard = OutboundGuard.from_settings(vigil.settings, resolver_factory=lambda: resolver)
    text = await refusal(guard, "http://metadata.example.test/latest/meta-data/")
    assert (
        text == REFUSED + "169.254.169.254 (metadata.example.test) is link-local (cloud metadata)"
    )


async def test_only_the_allowed_addresses_of_a_name_are_used(
    vigil: Vigil, target: HttpServer
) -> None:
    resolver = StaticResolver({"mixed.example.test": ["169.254.169.254", "127.0.0.1"]})
    guard = OutboundGuard.from_settings(vigil.settings, resolver_factory=lambda: resolver)
    assert await fetch(guard, f"http://mixed.example.test:{target.port}/ok") == 200
    assert target.hits == ["/ok"]


async def test_a_name_that_rebinds_is_checked_again_at_connect_time(
    vigil: Vigil, target: HttpServer
) -> None:
    """The first answer is harmless, the next one the metadata address: each connection
    is checked on the address it goes to."""
    resolver = StaticResolver({}, rebinding={"rebind.test": [["127.0.0.1"], ["169.254.169.254"]]})
    guard = OutboundGuard.from_settings(vigil.settings, resolver_factory=lambda: resolver)
    url = f"http://rebind.test:{target.port}/first"
    options = {"use_dns_cache": False, "force_close": True}
    async with guard.session(**options) as session:
        async with outbound.request(session, "GET", url, timeout_s=3) as response:
            assert response.status == 200
        with pytest.raises(aiohttp.ClientError) as raised:
            async with outbound.request(session, "GET", url, timeout_s=3):
                pass
    assert describe_error(raised.value) == (
        REFUSED + "169.254.169.254 (rebind.test) is link-local (cloud metadata)"
    )
    assert target.hits == ["/first"]


async def test_the_connector_refuses_literals_even_without_the_request_helper(
    vigil: Vigil,
) -> None:
    """A plain session.get on a guarded session is still checked when it connects."""
    guard = OutboundGuard.from_settings(vigil.settings)
    async with guard.session() as session:
        for url in (
            f"http://127.0.0.1:{vigil.gateway.port}/",
            f"http://[::1]:{vigil.gateway.port}/",
            f"http://0x7f000001:{vigil.gateway.port}/",
            "http://169.254.169.254/",
        ):
            with pytest.raises(aiohttp.ClientConnectorError) as raised:
                async with session.get(url, allow_redirects=True):
                    pass
            assert describe_error(raised.value).startswith(REFUSED), url
    assert vigil.gateway.hits == []


async def test_an_unguarded_session_is_not_accepted() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TypeError, match="OutboundGuard"):
            async with outbound.request(session, "GET", "http://127.0.0.1:9/", timeout_s=1):
                pass


# --- redirects --------------------------------------------------------------------------


def redirect(target: HttpServer, to: str, status: int = 302) -> str:
    return str(URL(f"{target.url}/redirect").with_query(status=status, to=to))


async def test_every_redirect_hop_is_checked(vigil: Vigil, target: HttpServer) -> None:
    guard = OutboundGuard.from_settings(vigil.settings)
    aims = [
        *loopback_urls(vigil.gateway.port, "/api/monitoring/alerts/a-1/resolve").values(),
        *loopback_urls(vigil.nats.port).values(),
        *METADATA_URLS,
    ]
    for status in (301, 302, 303, 307, 308):
        for aim in aims[:: 3 if status != 307 else 1]:
            text = await refusal(guard, redirect(target, aim, status))
            assert text.startswith(REFUSED), (status, aim, text)
    two_hops = redirect(target, redirect(target, f"http://[::1]:{vigil.gateway.port}/"))
    assert (await refusal(guard, two_hops)).endswith("is Vigil's own gateway port")
    assert vigil.gateway.hits == []


async def test_allowed_redirects_are_followed_up_to_the_limit(
    vigil: Vigil, target: HttpServer
) -> None:
    guard = OutboundGuard.from_settings(vigil.settings)
    assert await fetch(guard, redirect(target, f"{target.url}/landed")) == 200
    assert target.hits[-1] == "/landed"
    chain = f"{target.url}/end"
    for _ in range(3):
        chain = redirect(target, chain)
    with pytest.raises(aiohttp.TooManyRedirects) as raised:
        await fetch(guard, chain, max_redirects=2)
    assert describe_error(raised.value) == "too many redirects"
    assert "/end" not in target.hits


async def test_redirects_off_answer_the_redirect_itself(vigil: Vigil, target: HttpServer) -> None:
    guard = OutboundGuard.from_settings(vigil.settings)
    status = await fetch(guard, redirect(target, f"{target.url}/elsewhere"), max_redirects=0)
    assert status == 302
    assert "/elsewhere" not in target.hits


async def test_a_see_other_turns_a_post_into_a_get(vigil: Vigil, target: HttpServer) -> None:
    guard = OutboundGuard.from_settings(vigil.settings)
    await fetch(guard, redirect(target, f"{target.url}/after", 303), method="POST")
    assert target.methods[-2:] == ["POST", "GET"]


# --- the operator's lists ---------------------------------------------------------------


async def test_denying_loopback_refuses_every_loopback_target(
    vigil: Vigil, target: HttpServer
) -> None:
    plain = OutboundGuard.from_settings(vigil.settings)
    for url in loopback_urls(target.port).values():
        if "0177" in url or "2130706433" in url or "127.1:" in url:
            continue  # aiohttp itself refuses legacy spellings it would not connect to
        assert await fetch(plain, url) == 200, url
    reached = len(target.hits)

    strict = OutboundGuard.from_settings(
        vigil.settings, OutboundConfig(deny=["127.0.0.0/8", "::1/128"])
    )
    for host, url in loopback_urls(target.port).items():
        text = await refusal(strict, url)
        assert text.startswith(REFUSED), (host, text)
        assert "is in the denied range" in text, (host, text)
    assert await refusal(strict, redirect(target, f"{target.url}/x")) != ""
    assert len(target.hits) == reached


async def test_the_environment_adds_to_the_file(
    vigil: Vigil, target: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_OUTBOUND_DENY", "::1/128, 127.0.0.0/8")
    settings = Settings(port=vigil.gateway.port, nats_url=vigil.nats.url)
    assert settings.outbound_deny == ["::1/128", "127.0.0.0/8"]
    guard = OutboundGuard.from_settings(settings, OutboundConfig(deny=["10.0.0.0/8"]))
    assert "127.0.0.0/8" in await refusal(guard, f"http://localhost:{target.port}/")
    refused = guard.verdict(ipaddress.ip_address("10.1.2.3"), 80)
    assert refused is not None and refused.reason == "is in the denied range 10.0.0.0/8"
    assert target.hits == []


def test_the_most_specific_range_decides() -> None:
    guard = OutboundGuard(
        OutboundPolicy(
            deny=outbound.parse_networks(["10.0.0.0/8", "0.0.0.0/0", "10.1.2.3/32"]),
            allow=outbound.parse_networks(["10.1.0.0/16", "192.168.1.0/24", "0.0.0.0/0"]),
        ),
        local_addresses=frozenset,
    )

    def allowed(address: str) -> bool:
        return guard.verdict(ipaddress.ip_address(address), 80) is None

    assert not allowed("10.9.9.9")  # deny /8
    assert allowed("10.1.9.9")  # allow /16 inside deny /8
    assert not allowed("10.1.2.3")  # deny /32 inside allow /16
    assert not allowed("8.8.8.8")  # deny 0/0 and allow 0/0 tie: deny
    assert allowed("192.168.1.7")
    assert allowed("2001:db8::1")  # no IPv6 range listed


async def test_legacy_ipv4_spellings_are_read_as_the_address_they_mean() -> None:
    guard = OutboundGuard(OutboundPolicy(deny=outbound.parse_networks(["10.0.0.0/8"])))
    for spelling in ("10.1", "0xa000001", "167772161", "012.0.0.1"):
        with pytest.raises(OutboundRefused, match=r"10\.0\.0\.1.*is in the denied range"):
            guard.check_url(f"http://{spelling}/")


def test_outbound_section_of_the_file() -> None:
    config = parse_config("outbound:\n  deny: [127.0.0.0/8, '::1']\n  allow: [127.0.0.5/32]\n")
    assert config.outbound == OutboundConfig(
        deny=["127.0.0.0/8", "::1/128"], allow=["127.0.0.5/32"]
    )
    with pytest.raises(ConfigError, match=r"vigil.yaml:4: outbound.deny\[1\]: .*host bits set"):
        parse_config("outbound:\n  deny:\n    - 10.0.0.0/8\n    - 10.0.0.1/8\n")
    with pytest.raises(ConfigError, match=r"outbound.allow\[0\]: 'intranet' is not a CIDR"):
        parse_config("outbound:\n  allow: [intranet]\n")
    with pytest.raises(ConfigError, match=r"outbound.denied: Extra inputs"):
        parse_config("outbound:\n  denied: [10.0.0.0/8]\n")


def test_bad_environment_lists_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("VIGIL_OUTBOUND_ALLOW", "10.0.0.0/8,not-a-range")
    with pytest.raises(ValidationError, match="outbound_allow"):
        Settings()
    monkeypatch.delenv("VIGIL_OUTBOUND_ALLOW")
    monkeypatch.setenv("VIGIL_OUTBOUND_PROTECT", "gateway")
    with pytest.raises(ValidationError, match="outbound_protect"):
        Settings()


# --- what an error may say ----------------------------------------------------------------


async def test_errors_never_echo_what_the_far_end_sent(vigil: Vigil) -> None:
    guard = OutboundGuard.from_settings(vigil.settings)
    async with banner_server() as url:
        text = await refusal(guard, url)
    assert text == "invalid HTTP response"
    assert BANNER_SECRET not in text
    closed = f"http://127.0.0.1:{free_port()}/"
    assert await refusal(guard, closed) == "cannot connect: connection refused"


def test_status_text_is_the_standard_phrase() -> None:
    assert outbound.status_text(503) == "HTTP 503 Service Unavailable"
    assert outbound.status_text(599) == "HTTP 599"
