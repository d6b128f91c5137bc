"""The process's default client, used by the middlewares and helpers when given none."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vigil_client.client import VigilClient

_default: VigilClient | None = None


def default_client() -> VigilClient | None:
    return _default


def replace_default(client: VigilClient | None) -> VigilClient | None:
    """Make ``client`` the default; the one it replaces."""
    global _default
    previous, _default = _default, client
    return previous
