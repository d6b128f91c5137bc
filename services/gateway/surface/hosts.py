"""Which ``Host`` headers the gateway answers (DNS rebinding).

A page on ``attacker.example`` whose name is re-pointed at 127.0.0.1 reaches the gateway
with ``Host: attacker.example``; refusing names the gateway was not given stops it. IP
literals are always answered: a page can only be same-origin with an IP address by being
served from it, so such a Host is never a rebound name.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

LOOPBACK_NAMES = ("localhost",)
WILDCARD_BINDS = ("", "0.0.0.0", "::")


def host_name(header: str) -> str | None:
    """The name in a Host header without its port; None when it is malformed."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1 :] if end > 0 else "x"
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return value[1:end]
    name, colon, port = value.partition(":")
    if colon and not port.isdigit():
        return None
    if not name or any(c in name for c in "/@ \\"):
        return None
    return name.rstrip(".")


def machine_names() -> set[str]:
    names = {socket.gethostname().lower()}
    with contextlib.suppress(OSError):  # a resolver that fails outright
        names.add(socket.getfqdn().lower())
    return {name for name in names if name}


@dataclass(frozen=True)
class HostPolicy:
    names: frozenset[str]
    suffixes: tuple[str, ...]
    any_host: bool = False

    @classmethod
    def of(cls, allowed: Iterable[str], bind_host: str) -> HostPolicy:
        configured = [name.lower().rstrip(".") if name != "*" else name for name in allowed]
        names = {*LOOPBACK_NAMES, *machine_names()}
        if bind_host not in WILDCARD_BINDS:
            names.add(bind_host.lower())
        names.update(name for name in configured if not name.startswith(".") and name != "*")
        suffixes = tuple(name for name in configured if name.startswith("."))
        names.update(suffix[1:] for suffix in suffixes)
        return cls(frozenset(names), (".localhost", *suffixes), any_host="*" in configured)

    def allows(self, header: str | None) -> bool:
        """A request without Host (HTTP/1.0) is allowed: browsers always send one."""
        if header is None or self.any_host:
            return True
        name = host_name(header)
        if name is None:
            return False
        if name in self.names or name.endswith(self.suffixes):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True
