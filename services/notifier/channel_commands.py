"""The notifier owns the channels: the file's, provisioned at start, and those made through
the API (``vigil.cmd.channels.*``). A change is in use for the next notification, before
the command is answered. Secrets are encrypted in every event and decrypted only here."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.notifier.handlers import NotificationDispatcher
from shared.bus import EventBus
from shared.commands import (
    CREATE_CHANNEL,
    DELETE_CHANNEL,
    REENCRYPT_CHANNELS,
    UPDATE_CHANNEL,
    CreateChannel,
    DeleteChannel,
    ReencryptChannels,
    ReencryptResult,
    UpdateChannel,
    parse_command,
)
from shared.config import ChannelConfig
from shared.configbook import CHANNELS
from shared.configowner import ConfigOwner, ItemCodec
from shared.runtime import ServiceRuntime
from shared.secrets import MASK, SecretBox

log = logging.getLogger(__name__)


class ChannelSecrets:
    """The keys in use, read again when they are rotated; the codec of channel items."""

    def __init__(self, data_dir: Path, box: SecretBox | None = None):
        self.data_dir = data_dir
        self.box = box if box is not None else SecretBox.load(data_dir)

    def reload(self) -> None:
        self.box = SecretBox.load(self.data_dir)

    def seal(self, channel: ChannelConfig) -> ChannelConfig:
        return channel.model_copy(update={"secret": self.box.encrypt(channel.secret)})

    def open(self, channel: ChannelConfig) -> ChannelConfig:
        secret = self.box.decrypt(channel.secret, f"channels.{channel.name}.secret")
        return channel.model_copy(update={"secret": secret})

    def carry(self, current: ChannelConfig, wanted: ChannelConfig) -> ChannelConfig:
        """A secret sent back as the mask keeps the current one."""
        if wanted.secret == MASK:
            return wanted.model_copy(update={"secret": current.secret})
        return wanted

    def rewrap(self, stored: ChannelConfig) -> ChannelConfig | None:
        if self.box.encrypted_with_newest(stored.secret):
            return None
        what = f"channels.{stored.name}.secret"
        return stored.model_copy(update={"secret": self.box.reencrypt(stored.secret, what)})

    def digest(self, data: bytes) -> str:
        return self.box.fingerprint(data)

    def codec(self) -> ItemCodec[ChannelConfig]:
        return ItemCodec(self.seal, self.open, self.carry, self.rewrap, self.digest)


class ChannelCommands:
    def __init__(
        self,
        dispatcher: NotificationDispatcher,
        bus: Callable[[], EventBus],
        file_channels: list[ChannelConfig],
        file_path: str,
        secrets: ChannelSecrets,
    ):
        self.dispatcher = dispatcher
        self.secrets = secrets
        self.owner: ConfigOwner[ChannelConfig] = ConfigOwner(
            CHANNELS, bus, file_channels, file_path, self._use, secrets.codec()
        )

    async def _use(self, channels: list[ChannelConfig]) -> None:
        self.dispatcher.use_channels(channels)

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(CreateChannel, body)
        return (await self.owner.create(command.channel, command.by)).model_dump()

    async def update(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(UpdateChannel, body)
        result = await self.owner.update(command.name, command.channel, command.by)
        return result.model_dump()

    async def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(DeleteChannel, body)
        return (await self.owner.delete(command.name, command.by)).model_dump()

    async def reencrypt(self, body: dict[str, Any]) -> dict[str, Any]:
        """Read the keys again (a new one was added) and encrypt every secret with it."""
        command = parse_command(ReencryptChannels, body)
        self.secrets.reload()
        changed, seq = await self.owner.reencrypt(command.by)
        log.info("channel secrets encrypted with the newest key", extra={"channels": changed})
        return ReencryptResult(
            reencrypted=changed, keys=len(self.secrets.box.keys), seq=seq
        ).model_dump()

    def register(self, runtime: ServiceRuntime) -> None:
        runtime.on_start(self.owner.start)
        runtime.respond(CREATE_CHANNEL, self.create)
        runtime.respond(UPDATE_CHANNEL, self.update)
        runtime.respond(DELETE_CHANNEL, self.delete)
        runtime.respond(REENCRYPT_CHANNELS, self.reencrypt)
