"""The audit log: one event per write through the API, refused attempts included.

Never a body, never a header's value: who (the authenticated identity, or the key id a
refused request presented), what (method and route template), on what (path parameters),
from where, and the answer's status.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.events.base import Event

Outcome = Literal["ok", "refused", "rejected", "failed"]


def outcome_of(status: int) -> Outcome:
    """ok: done (2xx/3xx); refused: 401, 403, 429; rejected: other 4xx; failed: 5xx."""
    if status < 400:
        return "ok"
    if status in (401, 403, 429):
        return "refused"
    return "rejected" if status < 500 else "failed"


class AuditRecorded(Event):
    actor: str = Field(description="The identity's actor, or 'anonymous'")
    identity_kind: Literal["user", "key", "anonymous"] = "anonymous"
    key_id: str = ""
    role: str = ""
    method: str
    route: str = Field(description="The route template, e.g. /api/monitoring/alerts/{alert_id}/ack")
    target: dict[str, str] = Field(default_factory=dict, description="The path parameters")
    client: str = ""
    status: int
    outcome: Outcome

    @property
    def action(self) -> str:
        return f"{self.method} {self.route}"
