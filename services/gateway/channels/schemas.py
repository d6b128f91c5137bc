"""Bodies of the channels section: a channel is written exactly as in the YAML file's
``channels:``; its secret goes in, and comes out only as ``"(set)"``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from services.gateway.common.schemas import UtcDateTime
from shared.config import ChannelConfig
from shared.secrets import mask

Source = Literal["file", "api"]


class ChannelPublic(ChannelConfig):
    """A channel as the file writes it (``timeout: 10s``), its secret masked."""

    secret: str = Field(
        default="",
        description='"(set)" when the channel has a secret, empty otherwise; the value is '
        'never shown. Sending "(set)" back in a PUT keeps it',
    )
    model_config = ConfigDict(serialize_by_alias=True)  # the file's names: for, timeout

    source: Source = Field(
        description="file: managed by the configuration file, read-only here; api: made here"
    )
    file: str = Field(description="The configuration file that manages it; empty for api")
    version: int
    updated_at: UtcDateTime
    updated_by: str = Field(description="Who made the last change; empty for the file's")

    @classmethod
    def of(cls, row: Any) -> ChannelPublic:
        return cls.model_validate(
            {
                **row["definition"],
                "secret": mask(row["secret"]),
                "source": row["source"],
                "file": row["file"],
                "version": row["version"],
                "updated_at": row["updated_at"],
                "updated_by": row["updated_by"],
            }
        )
