"""Bodies of the channels section: a channel is written exactly as in the YAML file's
``channels:``; its credentials go in, and come out only as ``"(set)"``."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from services.gateway.common.schemas import UtcDateTime
from shared.channelconfig import CHANNEL_TYPES, ChannelBase
from shared.secrets import mask

Source = Literal["file", "api"]

_META: dict[str, Any] = {
    "source": (
        Source,
        Field(
            description="file: managed by the configuration file (or the environment), "
            "read-only here; api: made here"
        ),
    ),
    "file": (str, Field(description="The configuration file that manages it; empty for api")),
    "version": (int, ...),
    "updated_at": (UtcDateTime, ...),
    "updated_by": (str, Field(description="Who made the last change; empty for the file's")),
}


def _public(kind: type[ChannelBase]) -> type[BaseModel]:
    """The kind as the file writes it (``timeout: 10s``), credentials masked."""
    model: type[BaseModel] = create_model(
        f"{kind.__name__}Public",
        __base__=kind,
        __doc__=kind.__doc__,
        **_META,
    )
    model.model_config = ConfigDict(**{**kind.model_config, "serialize_by_alias": True})
    model.model_rebuild(force=True)
    return model


PUBLIC_TYPES = tuple(_public(kind) for kind in CHANNEL_TYPES)
ChannelPublic = Annotated[
    Union[PUBLIC_TYPES],  # type: ignore[valid-type]  # noqa: UP007
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(ChannelPublic)


def public_channel(row: Any) -> Any:
    """The read model's row as the API shows it."""
    definition = dict(row["definition"])
    return _ADAPTER.validate_python(
        {
            **definition,
            "source": row["source"],
            "file": row["file"],
            "version": row["version"],
            "updated_at": row["updated_at"],
            "updated_by": row["updated_by"],
        }
    )


def masked(channel: ChannelBase) -> dict[str, Any]:
    """The file's form with every credential shown only as set or not."""
    definition = channel.model_dump(mode="json", by_alias=True)
    for name in channel.SECRET_FIELDS:
        definition[name] = mask(getattr(channel, name))
    return definition
