"""The outbound guard: where Vigil's own HTTP requests (synthetic checks, notification
channels, the dead-man's switch) may connect.

A monitor is a request-forgery tool waiting to happen: whoever configures a check or a
channel picks the URL. So every connection is checked on the address it actually goes
to -- after DNS, at connect time (a name that later resolves elsewhere gains nothing),
for IP literals in any spelling (``0x7f000001``, ``2130706433``, ``[::1]``, ``0.0.0.0``),
and again for every redirect hop:

- link-local and cloud metadata addresses are always refused;
- Vigil's own listening ports (the gateway's, NATS's) on this host are always refused;
- loopback and private ranges are allowed (watching internal services is the point),
  unless the operator's ``deny``/``allow`` CIDR lists say otherwise: the most specific
  matching range decides, a tie goes to ``deny``, no match is allowed.

Error texts are fixed descriptions; they never carry bytes the far end sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

if TYPE_CHECKING:
    from shared.config import OutboundConfig
    from shared.settings import Settings

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_NATS_PORT = 4222
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# A redirect to another origin must not carry the credentials meant for the first one.
ORIGIN_BOUND_HEADERS = ("Authorization", "Cookie", "Proxy-Authorization")
LOCAL_ADDRESSES_TTL_S = 30.0
ENDPOINTS_TTL_S = 30.0

# Checked most specific first, so the metadata address says what it is.
ALWAYS_REFUSED: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.ip_network("169.254.169.254/32"), "is link-local (cloud metadata)"),
    (ipaddress.ip_network("fd00:ec2::254/128"), "is a cloud metadata address"),
    (ipaddress.ip_network("100.100.100.200/32"), "is a cloud metadata address"),
    (ipaddress.ip_network("169.254.0.0/16"), "is link-local"),
    (ipaddress.ip_network("fe80::/10"), "is link-local"),
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
LOOPBACK_V4 = ipaddress.IPv4Address("127.0.0.1")
LOOPBACK_V6 = ipaddress.IPv6Address("::1")
# The legacy IPv4 spellings inet_aton still accepts: 2130706433, 0x7f000001, 127.1, 0177.0.0.1
_LEGACY_IPV4 = re.compile(r"^(0[xX][0-9a-fA-F]+|[0-9]+)(\.(0[xX][0-9a-fA-F]+|[0-9]+)){0,3}$")


class OutboundRefused(OSError):
    """The outbound policy refuses this address. An OSError so that it passes through
    aiohttp's resolver and connector unchanged, as the cause of the connection error."""

    def __init__(self, target: str, reason: str):
        super().__init__(f"connection refused by the outbound policy: {target} {reason}")
        self.target = target
        self.reason = reason

    @property
    def description(self) -> str:
        return f"connection refused by the outbound policy: {self.target} {self.reason}"

    def __str__(self) -> str:
        return self.description


def effective_address(ip: IPAddress) -> IPAddress:
    """The address a connection to ``ip`` really reaches: IPv4-mapped and NAT64 forms are
    their IPv4 address, and the unspecified address is this host's loopback."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.is_unspecified:
            return LOOPBACK_V6
    if isinstance(ip, ipaddress.IPv4Address) and ip.is_unspecified:
        return LOOPBACK_V4
    return ip


def parse_address(text: str) -> IPAddress | None:
    """An IP literal as a host or a socket address gives it (brackets, a zone, legacy
    IPv4 spellings); None when ``text`` is a name."""
    host = text.strip().removeprefix("[").removesuffix("]")
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host.split("%", 1)[0])
    if _LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def host_addresses() -> frozenset[IPAddress]:
    """Every address of this host's interfaces."""
    import psutil

    found: set[IPAddress] = set()
    with contextlib.suppress(OSError):
        for addresses in psutil.net_if_addrs().values():
            for address in addresses:
                if address.family in (socket.AF_INET, socket.AF_INET6):
                    ip = parse_address(address.address)
                    if ip is not None:
                        found.add(ip)
    return frozenset(found)


def _show(ip: IPAddress | str, port: int | None = None) -> str:
    text = str(ip)
    if port is None:
        return text
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


@dataclass(frozen=True)
class Endpoint:
    """One of Vigil's own listeners: ``host`` may be a name, resolved when checked."""

    host: str
    port: int
    what: str


@dataclass(frozen=True)
class OutboundPolicy:
    deny: tuple[IPNetwork, ...] = ()
    allow: tuple[IPNetwork, ...] = ()
    own_ports: Mapping[int, str] = field(default_factory=dict)  # port -> what listens there
    own_endpoints: tuple[Endpoint, ...] = ()


def nats_endpoints(nats_url: str | None) -> list[Endpoint]:
    """The servers of a ``NATS_URL`` (comma-separated, ``nats://user:pass@host:port``)."""
    endpoints = []
    for part in (nats_url or "").split(","):
        if not part.strip():
            continue
        text = part.strip() if "://" in part else f"nats://{part.strip()}"
        try:
            parts = urlsplit(text)
            port = parts.port or DEFAULT_NATS_PORT
        except ValueError:
            continue
        if parts.hostname:
            endpoints.append(Endpoint(parts.hostname, port, "NATS"))
    return endpoints


def parse_endpoint(text: str, what: str = "listening") -> Endpoint:
    """``host:port`` or ``[v6]:port``."""
    parts = urlsplit(f"//{text.strip()}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ValueError(f"{text!r} is not host:port")
    return Endpoint(parts.hostname, port, what)


class OutboundGuard:
    """Decides whether an address may be connected to, and builds the HTTP sessions that
    enforce it at connect time."""

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        local_addresses: Callable[[], frozenset[IPAddress]] = host_addresses,
        resolver_factory: Callable[[], AbstractResolver] = DefaultResolver,
    ):
        self.policy = policy
        self._local_addresses = local_addresses
        self._local: frozenset[IPAddress] = frozenset()
        self._local_at = -LOCAL_ADDRESSES_TTL_S
        self.resolver_factory = resolver_factory
        self._endpoints: dict[tuple[IPAddress, int], str] = {}
        self._endpoints_at = -ENDPOINTS_TTL_S
        for endpoint in policy.own_endpoints:
            ip = parse_address(endpoint.host)
            if ip is not None:
                self._endpoints[(effective_address(ip), endpoint.port)] = endpoint.what

    @classmethod
    def from_settings(
        cls, settings: Settings, outbound: OutboundConfig | None = None, **options: Any
    ) -> OutboundGuard:
        """The policy of this process: the file's ``outbound:`` lists plus the
        environment's, and Vigil's own ports from ``VIGIL_PORT`` and ``NATS_URL``."""
        deny = [*(outbound.deny if outbound else []), *settings.outbound_deny]
        allow = [*(outbound.allow if outbound else []), *settings.outbound_allow]
        endpoints = [Endpoint("127.0.0.1", settings.port, "gateway")]
        endpoints += nats_endpoints(settings.nats_url)
        own_ports = {e.port: e.what for e in reversed(endpoints)}  # the gateway's name wins
        endpoints += [parse_endpoint(e) for e in settings.outbound_protect]
        policy = OutboundPolicy(
            deny=parse_networks(deny),
            allow=parse_networks(allow),
            own_ports=own_ports,
            own_endpoints=tuple(endpoints),
        )
        return cls(policy, **options)

    # --- the decision -------------------------------------------------------------

    def local_addresses(self) -> frozenset[IPAddress]:
        now = time.monotonic()
        if now - self._local_at >= LOCAL_ADDRESSES_TTL_S:
            self._local = frozenset(effective_address(a) for a in self._local_addresses())
            self._local_at = now
        return self._local

    def is_this_host(self, ip: IPAddress) -> bool:
        return ip.is_loopback or ip in self.local_addresses()

    def verdict(self, ip: IPAddress, port: int, host: str | None = None) -> OutboundRefused | None:
        """Why a connection to ``ip``:``port`` is refused, or None when it is allowed.
        ``host`` is the name or spelling the address came from, shown alongside."""
        real = effective_address(ip)
        notes = [host] if host is not None and host != str(ip) else []
        if real != ip and not ip.is_unspecified:
            notes.append(str(real))
        alias = f" ({', '.join(notes)})" if notes else ""
        for network, reason in ALWAYS_REFUSED:
            if real.version == network.version and real in network:
                return OutboundRefused(_show(ip) + alias, reason)
        what = self._endpoints.get((real, port))
        if what is None and port in self.policy.own_ports and self.is_this_host(real):
            what = self.policy.own_ports[port]
        if what is not None:
            return OutboundRefused(_show(ip, port) + alias, f"is Vigil's own {what} port")
        denied = self.denied_by(real)
        if denied is not None:
            return OutboundRefused(_show(ip) + alias, f"is in the denied range {denied}")
        return None

    def denied_by(self, ip: IPAddress) -> IPNetwork | None:
        """The operator's range that refuses ``ip``: the most specific matching range of
        either list decides, a tie goes to deny, and no match allows."""
        matches = [
            (network.prefixlen, denied, network)
            for denied, networks in ((True, self.policy.deny), (False, self.policy.allow))
            for network in networks
            if ip.version == network.version and ip in network
        ]
        if not matches:
            return None
        _, denied, network = max(matches, key=lambda m: (m[0], m[1]))
        return network if denied else None

    def check(self, ip: IPAddress | str, port: int, host: str | None = None) -> None:
        address = parse_address(ip) if isinstance(ip, str) else ip
        if address is None:
            raise OutboundRefused(str(ip), "is not an IP address")
        refused = self.verdict(address, port, host)
        if refused is not None:
            raise refused

    def check_url(self, url: str | URL) -> URL:
        """The URL, when its scheme is HTTP and its host, if an IP literal in any
        spelling, is allowed. Names are checked when resolved, at connect time."""
        parsed = url if isinstance(url, URL) else URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            raise aiohttp.InvalidURL(parsed)
        ip = parse_address(parsed.raw_host)
        if ip is not None:
            self.check(ip, parsed.port or 0, parsed.raw_host)
        return parsed

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` a connection that is not HTTP (SMTP) may go to, each
        checked as the HTTP sessions check theirs. Connect to these, never to ``host``
        again: a second lookup may answer differently. Raises OutboundRefused when the
        policy refuses every address, OSError when the name does not resolve."""
        literal = parse_address(host)
        if literal is not None:
            self.check(literal, port, host)
            return [str(literal)]
        resolver = GuardedResolver(self, self.resolver_factory())
        try:
            results = await resolver.resolve(host, port, socket.AF_UNSPEC)
        finally:
            await resolver.close()
        return [result["host"] for result in results]

    async def refresh(self) -> None:
        """Resolve the names among Vigil's own endpoints (NATS in compose), now and then."""
        now = time.monotonic()
        named = [e for e in self.policy.own_endpoints if parse_address(e.host) is None]
        if not named or now - self._endpoints_at < ENDPOINTS_TTL_S:
            return
        self._endpoints_at = now
        resolver = self.resolver_factory()
        try:
            for endpoint in named:
                try:
                    results = await resolver.resolve(endpoint.host, endpoint.port, socket.AF_UNSPEC)
                except OSError:
                    log.debug("cannot resolve Vigil endpoint", extra={"host": endpoint.host})
                    continue
                for result in results:
                    ip = parse_address(result["host"])
                    if ip is not None:
                        self._endpoints[(effective_address(ip), endpoint.port)] = endpoint.what
        finally:
            await resolver.close()

    # --- enforcement --------------------------------------------------------------

    def socket_for(self, addr_info: Any) -> socket.socket:
        """aiohttp's socket factory: the last word, on the very address being connected."""
        family, type_, proto, _, sockaddr = addr_info
        self.check(sockaddr[0], int(sockaddr[1]))
        return socket.socket(family=family, type=type_, proto=proto)

    def connector(self, **options: Any) -> GuardedConnector:
        return GuardedConnector(self, **options)

    def session(self, **connector_options: Any) -> aiohttp.ClientSession:
        """A session whose every connection passes the guard. It ignores proxy settings
        from the environment: a proxy would hide the real target from the check."""
        return aiohttp.ClientSession(connector=self.connector(**connector_options), trust_env=False)


class GuardedResolver(AbstractResolver):
    """Resolves through ``inner`` and keeps only the addresses the guard allows."""

    def __init__(self, guard: OutboundGuard, inner: AbstractResolver):
        self.guard = guard
        self.inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        await self.guard.refresh()
        results = await self.inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refusal: OutboundRefused | None = None
        for result in results:
            try:
                self.guard.check(result["host"], result["port"], host)
            except OutboundRefused as exc:
                refusal = refusal or exc
            else:
                allowed.append(result)
        if not allowed and refusal is not None:
            raise refusal
        return allowed

    async def close(self) -> None:
        await self.inner.close()


class GuardedConnector(aiohttp.TCPConnector):
    """A TCP connector that resolves through the guard and checks each socket address."""

    def __init__(self, guard: OutboundGuard, **options: Any):
        super().__init__(
            resolver=GuardedResolver(guard, guard.resolver_factory()),
            socket_factory=guard.socket_for,
            **options,
        )
        self.guard = guard
        self._guarded_resolver = self._resolver

    async def close(self, *, abort_ssl: bool = False) -> None:
        await super().close(abort_ssl=abort_ssl)
        await self._guarded_resolver.close()  # ours, so aiohttp leaves it open


def guard_of(session: aiohttp.ClientSession) -> OutboundGuard:
    """The guard behind a session; a session without one must not reach user-given URLs."""
    connector = session.connector
    if not isinstance(connector, GuardedConnector):
        raise TypeError("outbound requests need a session from OutboundGuard.session()")
    return connector.guard


@contextlib.asynccontextmanager
async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    timeout_s: float,
    max_redirects: int = 0,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """One request through the guard, following at most ``max_redirects`` redirects, each
    hop checked again; ``timeout_s`` bounds the whole exchange, reading included. With
    redirects off, a 3xx answer is the response; with them on, running out is an error."""
    guard = guard_of(session)
    sent = dict(headers or {})
    async with asyncio.timeout(timeout_s):
        target = guard.check_url(url)
        await guard.refresh()
        history: list[aiohttp.ClientResponse] = []
        while True:
            response = await session.request(
                method, target, headers=sent, data=data, allow_redirects=False
            )
            location = response.headers.get("Location")
            if response.status not in REDIRECT_STATUSES or not location or not max_redirects:
                break
            if len(history) >= max_redirects:
                response.release()
                raise aiohttp.TooManyRedirects(response.request_info, (*history, response))
            response.release()
            history.append(response)
            try:
                following = target.join(URL(location))
            except ValueError as exc:
                raise aiohttp.InvalidUrlRedirectClientError(location, "invalid") from exc
            if following.scheme not in ("http", "https"):
                raise aiohttp.NonHttpUrlRedirectClientError(following)
            following = guard.check_url(following)
            if following.origin() != target.origin():
                for name in ORIGIN_BOUND_HEADERS:
                    sent.pop(name, None)
            if (response.status == 303 and method != "HEAD") or (
                response.status in (301, 302) and method == "POST"
            ):
                method, data = "GET", None
            target = following
        try:
            yield response
        finally:
            response.release()


def _errno_text(exc: OSError) -> str:
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return "connection failed"


def refusal_in(exc: BaseException) -> OutboundRefused | None:
    """The policy refusal behind an error, however aiohttp wrapped it."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OutboundRefused):
            return current
        todo += [current.__cause__, current.__context__]
        if isinstance(current, aiohttp.ClientConnectorError):
            todo.append(current.os_error)
    return None


def describe_error(exc: BaseException, timeout_s: float | None = None) -> str:
    """A fixed description of a failed request: never the bytes the far end sent, which
    may be anything (another protocol's banner, a page, a secret)."""
    refused = refusal_in(exc)
    if refused is not None:
        return refused.description
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return f"timed out after {timeout_s:g}s" if timeout_s is not None else "timed out"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, aiohttp.NonHttpUrlRedirectClientError):
        return "redirected to a URL that is not HTTP"
    if isinstance(exc, aiohttp.InvalidUrlRedirectClientError):
        return "redirected to an invalid URL"
    if isinstance(exc, aiohttp.InvalidURL | ValueError):
        return "invalid URL"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "the host name does not resolve"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate not trusted"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {_errno_text(exc.os_error)}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without an answer"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "invalid response body"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "invalid HTTP response"
    if isinstance(exc, aiohttp.ClientOSError | OSError):
        return f"connection error: {_errno_text(exc)}"
    if isinstance(exc, aiohttp.ClientError):
        return "request failed"
    return f"request failed: {type(exc).__name__}"


def status_text(status: int) -> str:
    """``HTTP 503 Service Unavailable``: the standard phrase, not the server's own."""
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"
