"""The API key the benchmarks send: ``--key`` or ``VIGIL_API_KEY`` (an admin key, e.g. the
``VIGIL_BOOTSTRAP_ADMIN_KEY`` the system was started with)."""

from __future__ import annotations

import argparse
import os


def add_key_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        default=os.environ.get("VIGIL_API_KEY", ""),
        help="API key sent as a bearer token (default: $VIGIL_API_KEY)",
    )


def auth_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}
