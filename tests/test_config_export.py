"""``vigil config export`` and ``vigil secrets rotate`` against real services on a real
nats-server: a running system (NATS_URL) and a stopped one (its data dir)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services import cli
from services.alerts.app import build as build_alerts
from services.config_cli import export, rotate
from services.notifier.app import build as build_notifier
from services.synthetic.app import build as build_synthetic
from shared.bus import EventBus, connect
from shared.channelconfig import WebhookChannel
from shared.commands import CONFIGURE_CHECK, CREATE_CHANNEL, CREATE_MAINTENANCE, CREATE_RULE
from shared.config import CheckConfig, RuleConfig, VigilConfig, parse_config
from shared.natsserver import EmbeddedNats
from shared.secrets import KEY_FILE, SecretBox, load_keys
from shared.settings import Settings
from tests.conftest import RuntimeFactory

CLEAR = "exported-secret-in-clear"
FILE = VigilConfig(
    rules=[
        RuleConfig.model_validate({"name": "HighCPU", "metric": "cpu", "warning": 70, "for": "5m"})
    ],
    channels=[
        WebhookChannel(name="file-hook", type="webhook", url="http://127.0.0.1:9/h", secret="f-s")
    ],
    checks=[CheckConfig(name="home", url="http://127.0.0.1:9/", interval=3600)],
)


async def make_api_items(bus: EventBus) -> None:
    await bus.request(CREATE_RULE, {"rule": {"name": "DiskFull", "metric": "disk", "critical": 95}})
    channel = {
        "name": "api-hook",
        "type": "webhook",
        "url": "http://127.0.0.1:9/a",
        "secret": CLEAR,
    }
    await bus.request(CREATE_CHANNEL, {"channel": channel})
    await bus.request(
        CONFIGURE_CHECK,
        {"name": "api-check", "url": "http://127.0.0.1:9/x", "interval_s": 600, "enabled": False},
    )
    window = {
        "name": "patching",
        "matchers": ["host=~web-.*"],
        "cron": "0 2 * * 0",
        "duration": "2h",
        "timezone": "Europe/Berlin",
    }
    await bus.request(CREATE_MAINTENANCE, {"window": window})


async def test_export_of_a_running_system_is_a_valid_file_with_api_items_and_no_clear_secret(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory, tmp_path: Path
) -> None:
    for build in (build_alerts, build_notifier, build_synthetic):
        await start_service(build(settings, FILE))
    await make_api_items(bus)

    text, running = await export(settings, None)
    assert running
    assert CLEAR not in text and "f-s" not in text
    config = parse_config(text, "exported.yaml")
    assert [r.name for r in config.rules][:2] == ["HighCPU", "DiskFull"]
    assert config.rules[0].for_s == 300 and "for: 5m" in text
    assert [c.name for c in config.channels] == ["file-hook", "api-hook"]
    box = SecretBox.load(settings.data_dir)
    assert [box.decrypt(c.secret) for c in config.channels] == ["f-s", CLEAR]
    assert [(c.name, c.enabled, c.interval_s) for c in config.checks] == [
        ("api-check", False, 600.0),
        ("home", True, 3600.0),
    ]
    assert [(w.name, w.cron, w.duration) for w in config.maintenance] == [
        ("patching", "0 2 * * 0", 7200.0)
    ]
    written = tmp_path / "exported.yaml"
    written.write_text(text)
    assert cli.main(["check-config", str(written)]) == 0

    # used as the configuration file, the exported channels work with the same key
    await start_service(build_notifier(settings, config))


@pytest.fixture
def stopped_system(tmp_path: Path) -> Iterator[tuple[Settings, EmbeddedNats]]:
    """A data dir whose nats-server the test starts and stops like ``vigil up`` would."""
    data = tmp_path / "vigil"
    server = EmbeddedNats(data / "nats")
    yield Settings(data_dir=data, nats_url=None, heartbeat_interval_s=0.2), server
    server.stop()


async def test_rotate_on_a_stopped_data_dir_retires_the_old_key(
    stopped_system: tuple[Settings, EmbeddedNats],
) -> None:
    settings, server = stopped_system
    server.start()
    running = settings.model_copy(update={"nats_url": server.url})
    notifier = build_notifier(running, FILE)
    await notifier.start()
    nc = await connect(server.url, "test")
    await make_api_items_channel_only(EventBus(nc))
    await nc.close()
    await notifier.stop()
    server.stop()
    [old_key], _ = load_keys(settings.data_dir, env={})

    said = await rotate(settings, retire=True, env={})
    assert said[1] == "2 channel secrets encrypted with the newest key"
    keys, _ = load_keys(settings.data_dir, env={})
    assert len(keys) == 1 and keys != [old_key]
    assert (settings.data_dir / KEY_FILE).stat().st_mode & 0o777 == 0o600

    # the retired key is not needed: everything current opens with the new one alone
    text, running_system = await export(settings, None)
    assert not running_system
    exported = parse_config(text, "export")
    box = SecretBox(keys)
    assert sorted(box.decrypt(c.secret) for c in exported.channels) == sorted(["f-s", CLEAR])


async def make_api_items_channel_only(bus: EventBus) -> None:
    channel = {
        "name": "api-hook",
        "type": "webhook",
        "url": "http://127.0.0.1:9/a",
        "secret": CLEAR,
    }
    await bus.request(CREATE_CHANNEL, {"channel": channel})


async def test_rotate_on_a_running_system_asks_the_notifier(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build_notifier(settings, FILE))
    await make_api_items_channel_only(bus)
    said = await rotate(settings, retire=False, env={})
    assert said[0].endswith("new key added; 1 older kept for decryption")
    assert said[1] == "2 channel secrets encrypted with the newest key"
    assert len(load_keys(settings.data_dir, env={})[0]) == 2


def test_a_data_dir_in_use_is_refused_with_the_way_to_reach_it(
    stopped_system: tuple[Settings, EmbeddedNats], capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.datadir import DataDirLock

    settings, _ = stopped_system
    (settings.data_dir / "nats").mkdir(parents=True)
    with DataDirLock(settings.data_dir.resolve()).acquire("vigil up"):
        assert cli.main(["config", "export", "--data-dir", str(settings.data_dir)]) == 2
    said = capsys.readouterr().err
    assert "vigil config export:" in said and "set NATS_URL to its NATS" in said
