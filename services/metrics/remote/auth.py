"""How Vigil authenticates to a remote Prometheus-compatible store: a bearer token or
basic auth (what Prometheus' own ``remote_write`` offers), never both."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from pydantic import SecretStr


@dataclass(frozen=True)
class RemoteAuth:
    bearer_token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None

    def __post_init__(self) -> None:
        if self.bearer_token is not None and self.username is not None:
            raise ValueError("a bearer token or basic auth, not both")

    def headers(self) -> dict[str, str]:
        if self.bearer_token is not None:
            return {"Authorization": f"Bearer {self.bearer_token.get_secret_value()}"}
        if self.username is not None:
            secret = self.password.get_secret_value() if self.password is not None else ""
            pair = base64.b64encode(f"{self.username}:{secret}".encode()).decode()
            return {"Authorization": f"Basic {pair}"}
        return {}

    def __repr__(self) -> str:
        kind = "bearer" if self.bearer_token else "basic" if self.username else "none"
        return f"RemoteAuth({kind})"


NO_AUTH = RemoteAuth()
