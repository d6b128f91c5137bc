"""Where a request comes from: the HTTP surface's answer (which honours trusted proxies)
when the gateway has one, else the socket's peer."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

_from_surface: Callable[[Request], str] | None = None
try:  # the HTTP surface section knows about trusted reverse proxies
    from services.gateway import surface  # type: ignore[attr-defined,unused-ignore]

    _from_surface = surface.client_address
except ImportError:  # pragma: no cover - depends on the sections present
    pass


def client_address(request: Request) -> str:
    if _from_surface is not None:
        return str(_from_surface(request))
    return request.client.host if request.client else ""
