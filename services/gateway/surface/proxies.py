"""Who the client is and how it connected, believing forwarded headers only from
configured reverse proxies (``VIGIL_TRUSTED_PROXIES``).

Audit records and rate limits key on ``client_address``; a client that is not a trusted
proxy cannot choose its address by sending ``X-Forwarded-For``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _last(headers: Headers, name: str) -> str | None:
    values = [v.strip() for raw in headers.getlist(name) for v in raw.split(",") if v.strip()]
    return values[-1] if values else None


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()

    @classmethod
    def of(cls, cidrs: Iterable[str]) -> TrustedProxies:
        return cls(tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs))

    def trusts(self, peer: str | None) -> bool:
        if not self.networks or peer is None:
            return False
        address = _address(peer)
        return address is not None and any(address in network for network in self.networks)

    def client(self, scope: Scope) -> str:
        """The address of the client: the peer, or, when the peer is a trusted proxy, the
        nearest address in ``X-Forwarded-For`` that is not itself a trusted proxy."""
        peer = scope["client"][0] if scope.get("client") else ""
        if not self.trusts(peer):
            return peer
        headers = Headers(scope=scope)
        hops = [v.strip() for raw in headers.getlist("x-forwarded-for") for v in raw.split(",")]
        for hop in reversed([h for h in hops if h]):
            address = _address(hop)
            if address is None:
                return peer  # a mangled chain: trust nothing in it
            if not self.trusts(str(address)):
                return str(address)
            peer = str(address)
        return peer

    def forwarded(self, scope: Scope, name: str) -> str | None:
        """A forwarded header's value (the nearest proxy's), when the peer is trusted."""
        peer = scope["client"][0] if scope.get("client") else None
        if not self.trusts(peer):
            return None
        return _last(Headers(scope=scope), name)

    def scheme(self, scope: Scope) -> str:
        proto = (self.forwarded(scope, "x-forwarded-proto") or "").lower()
        return proto if proto in ("http", "https") else str(scope.get("scheme", "http"))

    def host(self, scope: Scope) -> str | None:
        """The Host the client asked for: a trusted proxy's X-Forwarded-Host, or Host."""
        return self.forwarded(scope, "x-forwarded-host") or Headers(scope=scope).get("host")
