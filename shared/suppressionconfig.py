"""Noise controls in the configuration file: inhibition rules and the flapping limit.

Inhibition has Alertmanager's shape (``source_matchers``, ``target_matchers``,
``equal``) and its matcher syntax, so a file written for Alertmanager reads the same.
Both are file-only: they say how paging behaves, not what is watched.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from shared.configtypes import Duration, Strict
from shared.matchers import LABEL_NAME, check_texts


def _matchers(matchers: list[str], info: ValidationInfo) -> list[str]:
    return check_texts(matchers, info.field_name or "matchers")


class InhibitRuleConfig(Strict):
    """While an open alert matching ``source_matchers`` fires, alerts matching
    ``target_matchers`` whose ``equal`` labels have the same values page nobody."""

    source_matchers: list[str] = Field(
        min_length=1,
        max_length=50,
        description='Matchers the inhibiting alert meets, e.g. alertname="HostDown"',
    )
    target_matchers: list[str] = Field(
        min_length=1,
        max_length=50,
        description='Matchers the inhibited alerts meet, e.g. severity="warning"',
    )
    equal: list[str] = Field(
        default_factory=list,
        max_length=30,
        description="Labels that must have the same value on both (missing on both counts)",
    )

    _parse = field_validator("source_matchers", "target_matchers")(_matchers)

    @field_validator("equal")
    @classmethod
    def _label_names(cls, names: list[str]) -> list[str]:
        for index, name in enumerate(names):
            if not LABEL_NAME.match(name):
                raise ValueError(f"equal[{index}]: {name!r} is not a label name")
        return names


class FlappingConfig(Strict):
    """A series that fires and resolves more than ``changes`` times within ``window`` is
    flapping: one notification says so, its flips page nobody, and one more says when it
    has held one state for a whole window."""

    enabled: bool = True
    changes: int = Field(
        default=6, ge=1, le=1000, description="More state changes than this within the window"
    )
    window_s: Duration = Field(
        default=600.0, alias="window", gt=0, le=7 * 86400, description="e.g. 10m"
    )
