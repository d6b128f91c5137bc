"""Where the API lives, and how a resource's path is written."""

from __future__ import annotations

from urllib.parse import quote

PREFIX = "/api/monitoring"


def resource_path(*parts: str) -> str:
    return "/".join([PREFIX, *(quote(part, safe="") for part in parts)])
