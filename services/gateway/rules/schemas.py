"""Bodies of the rules section: a rule is written exactly as in the YAML file's ``rules:``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from services.gateway.common.schemas import UtcDateTime
from shared.config import RuleConfig

Source = Literal["file", "api"]


class RulePublic(RuleConfig):
    """A rule as the file writes it (``for: 5m``), and where it comes from."""

    model_config = ConfigDict(serialize_by_alias=True)  # the file's names: for, timeout

    source: Source = Field(
        description="file: managed by the configuration file, read-only here; api: made here"
    )
    file: str = Field(description="The configuration file that manages it; empty for api")
    version: int
    updated_at: UtcDateTime
    updated_by: str = Field(description="Who made the last change; empty for the file's")

    @classmethod
    def of(cls, row: Any) -> RulePublic:
        return cls.model_validate(
            {
                **row["definition"],
                "source": row["source"],
                "file": row["file"],
                "version": row["version"],
                "updated_at": row["updated_at"],
                "updated_by": row["updated_by"],
            }
        )
