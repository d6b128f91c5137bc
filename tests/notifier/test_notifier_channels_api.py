"""Channels through request/reply against a real nats-server and real receivers: used for
the next notification, secrets only ever encrypted at rest, keys rotated."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.notifier.app import build
from services.notifier.channels.webhook import verify
from shared import subjects
from shared.bus import EventBus
from shared.channelconfig import WebhookChannel
from shared.commands import CREATE_CHANNEL, DELETE_CHANNEL, REENCRYPT_CHANNELS, UPDATE_CHANNEL
from shared.config import VigilConfig
from shared.configbook import CHANNELS
from shared.errors import Conflict, NotFound
from shared.events import (
    AlertFired,
    ChannelCreated,
    ChannelDeleted,
    ChannelsProvisioned,
    ChannelUpdated,
    Event,
    NotificationDelivered,
)
from shared.secrets import KEY_FILE, SecretBox, is_encrypted, load_keys, new_key, write_key_file
from shared.settings import Settings
from shared.streams import CONFIG
from tests.conftest import RuntimeFactory
from tests.notifier.conftest import ReceiverFactory
from tests.waiting import eventually

CLEAR = "hunter2-clear-secret-value"


def fired(alert_id: str) -> AlertFired:
    return AlertFired(
        aggregate_id=alert_id,
        rule="HighCPU",
        fingerprint="fp-1",
        metric="cpu",
        severity="critical",
        value=97.0,
        threshold=90.0,
    )


async def page(bus: EventBus, alert_id: str) -> None:
    event = fired(alert_id)
    await bus.publish(subjects.alert(alert_id), event)


async def config_events(bus: EventBus) -> list[Event]:
    """The channels' events (the notifier provisions its other kinds on CONFIG too)."""
    return [r.event async for r in bus.replay(CONFIG.name) if CHANNELS.makes(r.event)]


async def delivered(bus: EventBus, count: int) -> list[NotificationDelivered]:
    async def probe() -> list[NotificationDelivered]:
        found = [
            r.event
            async for r in bus.replay("NOTIFICATIONS")
            if isinstance(r.event, NotificationDelivered)
        ]
        return found if len(found) >= count else []

    return await eventually(probe, what=f"{count} deliveries")


def files_holding(root: Path, needle: bytes) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and needle in path.read_bytes()]


async def test_a_channel_made_through_the_api_gets_the_next_page_signed_with_its_secret(
    bus: EventBus,
    settings: Settings,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
    tmp_path: Path,
) -> None:
    first, second = await receiver_factory(), await receiver_factory()
    await start_service(build(settings, VigilConfig()))
    channel = {"name": "ops", "type": "webhook", "url": first.url, "secret": CLEAR}
    created = await bus.request(CREATE_CHANNEL, {"channel": channel, "by": "key:admin"})
    assert (created["stream"], created["version"]) == ("CONFIG", 1)
    await page(bus, "a-1")
    await delivered(bus, 1)
    [request] = first.requests
    assert verify(CLEAR, request.headers["X-Vigil-Signature-256"], request.body)

    # the mask sent back keeps the secret; the next page goes to the new URL
    moved = {**channel, "url": second.url, "secret": "(set)"}
    await bus.request(UPDATE_CHANNEL, {"name": "ops", "channel": moved})
    await page(bus, "a-2")
    await delivered(bus, 2)
    [request] = second.requests
    assert verify(CLEAR, request.headers["X-Vigil-Signature-256"], request.body)

    await bus.request(DELETE_CHANNEL, {"name": "ops", "by": "ann"})
    with pytest.raises(NotFound):
        await bus.request(DELETE_CHANNEL, {"name": "ops"})
    await page(bus, "a-3")
    await page(bus, "a-4")
    assert len(await delivered(bus, 2)) == 2
    assert (len(first.requests), len(second.requests)) == (1, 1)

    stored = await config_events(bus)
    assert [type(e) for e in stored] == [
        ChannelsProvisioned,
        ChannelCreated,
        ChannelUpdated,
        ChannelDeleted,
    ]
    for event in stored[1:3]:
        assert isinstance(event, ChannelCreated | ChannelUpdated)
        assert is_encrypted(event.channel.secret)
    # nothing at rest holds the secret in clear: the log, the ledger, the key file
    assert files_holding(tmp_path, CLEAR.encode()) == []
    assert (settings.data_dir / KEY_FILE).stat().st_mode & 0o777 == 0o600


async def test_file_channels_are_provisioned_encrypted_once_and_read_only(
    bus: EventBus,
    settings: Settings,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
    tmp_path: Path,
) -> None:
    receiver = await receiver_factory()
    path = tmp_path / "vigil.yaml"
    settings = settings.model_copy(update={"config": path})
    file = VigilConfig(
        channels=[WebhookChannel(name="ops", type="webhook", url=receiver.url, secret=CLEAR)]
    )
    first = await start_service(build(settings, file))
    with pytest.raises(
        Conflict, match=f"channel 'ops' is managed by the configuration file {path}"
    ):
        await bus.request(
            UPDATE_CHANNEL,
            {"name": "ops", "channel": {**file.channels[0].model_dump(), "url": "http://x"}},
        )
    await first.stop()
    await start_service(build(settings, file))
    [provisioned] = await config_events(bus)  # the same file again: nothing appended
    assert isinstance(provisioned, ChannelsProvisioned)
    assert (provisioned.file, is_encrypted(provisioned.channels[0].secret)) == (str(path), True)
    await page(bus, "a-1")
    await delivered(bus, 1)
    assert verify(
        CLEAR, receiver.requests[0].headers["X-Vigil-Signature-256"], receiver.requests[0].body
    )
    assert files_holding(settings.data_dir, CLEAR.encode()) == []


async def test_rotating_the_key_encrypts_every_secret_again_and_the_old_key_can_go(
    bus: EventBus,
    settings: Settings,
    start_service: RuntimeFactory,
    receiver_factory: ReceiverFactory,
) -> None:
    receiver = await receiver_factory()
    file = VigilConfig(
        channels=[
            WebhookChannel(name="file-ops", type="webhook", url=receiver.url, secret="file-s")
        ]
    )
    first = await start_service(build(settings, file))
    channel = {"name": "api-ops", "type": "webhook", "url": receiver.url, "secret": CLEAR}
    await bus.request(CREATE_CHANNEL, {"channel": channel})
    old_keys, _ = load_keys(settings.data_dir, env={})
    write_key_file(settings.data_dir / KEY_FILE, [new_key(), *old_keys])

    result = await bus.request(REENCRYPT_CHANNELS, {})
    assert (result["reencrypted"], result["keys"]) == (2, 2)
    again = await bus.request(REENCRYPT_CHANNELS, {})
    assert again["reencrypted"] == 0  # already under the newest key

    newest_only = SecretBox(load_keys(settings.data_dir, env={})[0][:1])
    await first.stop()
    write_key_file(settings.data_dir / KEY_FILE, newest_only.keys)  # the old key retired
    await start_service(build(settings, file))
    await page(bus, "a-1")
    await delivered(bus, 2)
    secrets_seen = {r.headers["X-Vigil-Delivery"]: r for r in receiver.requests}
    assert len(secrets_seen) == 2
    checks = sorted(
        any(verify(s, r.headers["X-Vigil-Signature-256"], r.body) for s in (CLEAR, "file-s"))
        for r in receiver.requests
    )
    assert checks == [True, True]
