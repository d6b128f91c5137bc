"""The notifier owns the channels: the file's, provisioned at start, and those made through
the API (``vigil.cmd.channels.*``). A change is in use for the next notification, before
the command is answered. Secrets are encrypted in every event and decrypted only here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from services.notifier.channel_test import send_test
from services.notifier.handlers import NotificationDispatcher
from shared.bus import EventBus
from shared.channelconfig import ChannelBase
from shared.commands import (
    CREATE_CHANNEL,
    DELETE_CHANNEL,
    REENCRYPT_CHANNELS,
    TEST_CHANNEL,
    UPDATE_CHANNEL,
    CreateChannel,
    DeleteChannel,
    ReencryptChannels,
    ReencryptResult,
    UpdateChannel,
    parse_command,
)
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

    def seal(self, channel: ChannelBase) -> ChannelBase:
        return channel.with_secrets(
            {name: self.box.encrypt(value) for name, value in channel.secrets().items()}
        )

    def open(self, channel: ChannelBase) -> ChannelBase:
        return channel.with_secrets(
            {
                name: self.box.decrypt(value, f"channels.{channel.name}.{name}")
                for name, value in channel.secrets().items()
            }
        )

    def carry(self, current: ChannelBase, wanted: ChannelBase) -> ChannelBase:
        """A credential sent back as the mask keeps the current one (same kind only)."""
        if type(current) is not type(wanted):
            return wanted
        kept = {
            name: getattr(current, name)
            for name, value in wanted.secrets().items()
            if value == MASK
        }
        return wanted.with_secrets(kept) if kept else wanted

    def rewrap(self, stored: ChannelBase) -> ChannelBase | None:
        stale = {
            name: value
            for name, value in stored.secrets().items()
            if not self.box.encrypted_with_newest(value)
        }
        if not stale:
            return None
        return stored.with_secrets(
            {
                name: self.box.reencrypt(value, f"channels.{stored.name}.{name}")
                for name, value in stale.items()
            }
        )

    def digest(self, data: bytes) -> str:
        return self.box.fingerprint(data)

    def codec(self) -> ItemCodec[ChannelBase]:
        return ItemCodec(self.seal, self.open, self.carry, self.rewrap, self.digest)


class ChannelCommands:
    def __init__(
        self,
        dispatcher: NotificationDispatcher,
        bus: Callable[[], EventBus],
        file_channels: Sequence[ChannelBase],
        file_path: str,
        secrets: ChannelSecrets,
    ):
        self.dispatcher = dispatcher
        self.secrets = secrets
        self.owner: ConfigOwner[ChannelBase] = ConfigOwner(
            CHANNELS, bus, list(file_channels), file_path, self._use, secrets.codec()
        )

    async def _use(self, channels: Sequence[ChannelBase]) -> None:
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

    async def test(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send a marked test message through the channel now; the receiver's answer."""
        return await send_test(self.dispatcher, body)

    def register(self, runtime: ServiceRuntime) -> None:
        runtime.on_start(self.owner.start)
        runtime.respond(CREATE_CHANNEL, self.create)
        runtime.respond(UPDATE_CHANNEL, self.update)
        runtime.respond(DELETE_CHANNEL, self.delete)
        runtime.respond(REENCRYPT_CHANNELS, self.reencrypt)
        runtime.respond(TEST_CHANNEL, self.test)
