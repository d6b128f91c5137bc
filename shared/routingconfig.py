"""The routing tree: which receivers an alert or incident goes to, grouped how.

Alertmanager's model and meaning (matchers, ``continue``, ``group_by``, ``group_wait``,
``group_interval``, ``repeat_interval``), with one difference: ``group_wait`` defaults
to 0, so the first notification of a new group goes out at once and grouping never
costs the first page its speed. Labels a route sees: the alert's labels plus ``rule``
(also as ``alertname``), ``severity``, ``metric`` and ``kind`` (``alert``,
``incident`` or ``page``).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from shared.configtypes import Duration, Name, Strict
from shared.matchers import check_texts

ALL_LABELS = "..."


class RouteConfig(Strict):
    """A node of the tree; a field left out is inherited from the parent."""

    matchers: list[str] = Field(
        default_factory=list,
        max_length=50,
        description='Alertmanager matchers, all of which must hold: severity="critical", '
        'team=~"db|web", env!="dev"',
    )
    channels: list[Name] | None = Field(
        default=None,
        max_length=50,
        description="Receivers; at the root, left out = every channel (each by its events)",
    )
    escalation_policy: Name | None = Field(
        default=None, description="Page through this policy (steps, delays, on-call)"
    )
    continue_: bool = Field(
        default=False, alias="continue", description="Also try the next sibling routes"
    )
    group_by: list[str] | None = Field(
        default=None,
        max_length=30,
        description='Labels that make a group; ["..."] = every label (no grouping)',
    )
    group_wait: Duration | None = Field(default=None, le=3600)
    group_interval: Duration | None = Field(default=None, le=86400)
    repeat_interval: Duration | None = Field(
        default=None, le=30 * 86400, description="Send a still-firing group again; 0 = never"
    )
    routes: list[RouteConfig] = Field(default_factory=list, max_length=100)

    @field_validator("matchers")
    @classmethod
    def _parse(cls, matchers: list[str]) -> list[str]:
        return check_texts(matchers, "matchers")


RouteConfig.model_rebuild()
