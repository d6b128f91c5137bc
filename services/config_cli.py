"""``vigil config export`` and ``vigil secrets rotate``: the configuration and the secret
keys, against a stopped system's data dir (its log opened like ``vigil rebuild`` does) or a
running one (``NATS_URL``).

The export is YAML that ``vigil check-config`` accepts: every rule, channel, check,
contact, schedule, escalation policy and maintenance window in use, those made through the
API included, plus
the other sections of the configuration file when one is given. Channel secrets are
written encrypted (``enc:v1:…``): such a file works with this data dir's secret key, and
nothing in it is a secret in clear.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from services.synthetic.domain import CheckCatalog
from shared import subjects
from shared.bus import EventBus, log_session
from shared.channelconfig import ChannelBase
from shared.commands import REENCRYPT_CHANNELS, ReencryptChannels, ReencryptResult
from shared.config import (
    CheckConfig,
    ConfigError,
    RuleConfig,
    VigilConfig,
    load_config,
    parse_config,
)
from shared.configbook import (
    CHANNELS,
    CONTACTS,
    MAINTENANCE,
    POLICIES,
    RULES,
    SCHEDULES,
    ConfigBook,
    ConfigKind,
)
from shared.configowner import ConfigOwner
from shared.errors import VigilError
from shared.secrets import KEY_ENV, SecretKeyError, key_file, load_keys, new_key, write_key_file
from shared.settings import Settings
from shared.streams import CONFIG, SYNTHETIC

REENCRYPT_TIMEOUT_S = 30.0


class CliError(Exception):
    """A failure told to the operator in one line."""


@asynccontextmanager
async def open_log(settings: Settings, purpose: str) -> AsyncIterator[tuple[EventBus, bool]]:
    """The event log, and whether it belongs to a running system.

    With ``NATS_URL`` the running system's; otherwise the data dir's, opened with an
    embedded nats-server while holding the data dir's lock (refused while ``vigil up``
    runs on it).
    """
    if settings.nats_url:
        async with log_session(settings, purpose) as bus:
            yield bus, True
        return
    from shared.datadir import DataDirError, DataDirLock
    from shared.natsserver import EmbeddedNats

    if not (settings.data_dir / "nats").exists():
        raise CliError(f"{settings.data_dir}: no Vigil data here (no nats/ directory)")
    try:
        lock = DataDirLock(settings.data_dir.resolve()).acquire(f"vigil {purpose}")
    except DataDirError as exc:
        raise CliError(
            f"{exc}; to work with the running system set NATS_URL to its NATS "
            "(`vigil up` prints it as `vigil nats ready (...)`)"
        ) from exc
    embedded = EmbeddedNats(settings.data_dir / "nats").start()
    try:
        async with log_session(
            settings.model_copy(update={"nats_url": embedded.url}), purpose
        ) as bus:
            yield bus, False
    finally:
        embedded.stop()
        lock.release()


# --- export ------------------------------------------------------------------------


async def _fold(bus: EventBus, kind: ConfigKind[Any]) -> ConfigBook[Any]:
    book: ConfigBook[Any] = ConfigBook(kind)
    async for recorded in bus.replay(CONFIG.name, f"{kind.subject_prefix}.>"):
        book.apply(recorded.event, recorded.seq)
    for recorded in await bus.read_subject(kind.provisioned_subject):
        book.apply(recorded.event, recorded.seq)
    return book


async def _checks(bus: EventBus) -> list[CheckConfig]:
    catalog = CheckCatalog()
    async for recorded in bus.replay(SYNTHETIC.name, f"{subjects.CHECK_DEFINITIONS}.>"):
        catalog.apply(recorded.event, recorded.seq)
    return [
        CheckConfig.model_validate(
            {
                "name": d.name,
                "type": d.kind,
                "url": d.url,
                "method": d.method,
                "expected_status": d.expected_status,
                "timeout": d.timeout_s,
                "interval": d.interval_s,
                "failures_before_alert": d.failures_before_alert,
                "enabled": d.enabled,
            }
        )
        for d in sorted(catalog.definitions.values(), key=lambda d: d.name)
    ]


PAGING_SECTIONS: dict[str, ConfigKind[Any]] = {
    "contacts": CONTACTS,
    "schedules": SCHEDULES,
    "escalation_policies": POLICIES,
}


async def current_config(bus: EventBus, base: VigilConfig) -> VigilConfig:
    """``base`` (the file's other sections) with the rules, channels and checks in use."""
    rules: list[RuleConfig] = (await _fold(bus, RULES)).items()
    channels: list[ChannelBase] = (await _fold(bus, CHANNELS)).items()
    checks = await _checks(bus)
    update: dict[str, Any] = {"rules": rules, "channels": channels, "checks": checks}
    for section, kind in PAGING_SECTIONS.items():
        update[section] = (await _fold(bus, kind)).items()
    update["maintenance"] = (await _fold(bus, MAINTENANCE)).items()
    return base.model_copy(update=update)


def _section(items: list[Any]) -> list[dict[str, Any]]:
    return [i.model_dump(mode="json", by_alias=True, exclude_defaults=True) for i in items]


def render(config: VigilConfig, origin: str) -> str:
    """The YAML text; checked with the same parser ``vigil check-config`` uses."""
    body: dict[str, Any] = {
        "rules": _section(config.rules),
        "channels": _section(config.channels),
        "checks": _section(config.checks),
    }
    # an empty paging section is left out: present, it would make every policy's
    # reference to that kind be checked against it
    for section in (*PAGING_SECTIONS, "maintenance"):
        if getattr(config, section):
            body[section] = _section(getattr(config, section))
    rest = config.model_dump(
        mode="json",
        by_alias=True,
        exclude_none=True,
        exclude={"rules", "channels", "checks", "maintenance", *PAGING_SECTIONS},
    )
    body.update(rest)
    header = (
        f"# Vigil configuration, exported {datetime.now(UTC).isoformat(timespec='seconds')}"
        f" from {origin}.\n"
        "# Channel secrets are encrypted (enc:v1:...): this file works with the same secret\n"
        "# key (VIGIL_SECRET_KEY or <data dir>/secret.key). Used as the configuration file,\n"
        "# every item in it is file-managed (read-only through the API).\n"
    )
    text = header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
    try:
        parse_config(text, "export")  # never write what check-config would refuse
    except ConfigError as exc:
        # a policy made through the API may name a person or schedule nobody made yet
        raise CliError(
            f"the configuration in use would not be a valid file; fix it first:\n{exc}"
        ) from exc
    return text


async def export(settings: Settings, config_file: Path | None) -> tuple[str, bool]:
    base = load_config(config_file) if config_file is not None else VigilConfig()
    async with open_log(settings, "config-export") as (bus, running):
        config = await current_config(bus, base)
    origin = "the running system" if running else str(settings.data_dir)
    return render(config, origin), running


# --- rotate ------------------------------------------------------------------------


async def reencrypt_in_log(bus: EventBus, data_dir: Path, by: str) -> tuple[int, int]:
    """Encrypt every current channel secret with the newest key, writing to the log directly
    (the system is stopped, so nothing else writes channels)."""
    from services.notifier.channel_commands import ChannelSecrets

    secrets = ChannelSecrets(data_dir)

    async def unused(_: list[ChannelBase]) -> None:
        return None

    owner: ConfigOwner[ChannelBase] = ConfigOwner(
        CHANNELS, lambda: bus, [], "", unused, secrets.codec()
    )
    await owner.load()
    return await owner.reencrypt(by)


async def rotate(settings: Settings, retire: bool, env: dict[str, str]) -> list[str]:
    """Returns what was done, one line each."""
    said: list[str] = []
    path = key_file(settings.data_dir)
    from_env = bool(env.get(KEY_ENV, "").strip())
    if from_env:
        if retire:
            raise CliError(f"the keys come from {KEY_ENV}: retire a key by removing it there")
        said.append(f"keys from {KEY_ENV}: encrypting with its first key")
    else:
        if not path.exists():
            raise CliError(f"{path}: no secret key file here")
        keys, _ = load_keys(settings.data_dir, env)
        write_key_file(path, [new_key(), *keys])
        said.append(f"{path}: new key added; {len(keys)} older kept for decryption")
    async with open_log(settings, "secrets-rotate") as (bus, running):
        if running:
            try:
                raw = await bus.request(
                    REENCRYPT_CHANNELS,
                    ReencryptChannels().model_dump(),
                    timeout=REENCRYPT_TIMEOUT_S,
                )
            except VigilError as exc:
                raise CliError(
                    f"the notifier did not encrypt the secrets again: {exc.message}; the new "
                    "key is in place (start the notifier, or stop the system, and run this again)"
                ) from exc
            result = ReencryptResult.model_validate(raw)
            changed = result.reencrypted
        else:
            changed, _ = await reencrypt_in_log(bus, settings.data_dir, "vigil secrets rotate")
    said.append(f"{changed} channel secrets encrypted with the newest key")
    if retire:
        newest = load_keys(settings.data_dir, env)[0][:1]
        write_key_file(path, newest)
        said.append(f"{path}: older keys retired; only the newest is kept")
    return said


# --- the commands ------------------------------------------------------------------


def _settings(data_dir: Path | None) -> Settings:
    settings = Settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    return settings


def cmd_config_export(args: argparse.Namespace) -> int:
    import os

    settings = _settings(args.data_dir)
    config_file = args.config if args.config is not None else settings.config
    try:
        text, _ = asyncio.run(export(settings, config_file))
    except (CliError, ConfigError, SecretKeyError) as exc:
        print(f"vigil config export: {exc}", file=sys.stderr)
        return 2
    if args.output is None or str(args.output) == "-":
        sys.stdout.write(text)
    else:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_secrets_rotate(args: argparse.Namespace) -> int:
    import os

    settings = _settings(args.data_dir)
    try:
        for line in asyncio.run(rotate(settings, args.retire, dict(os.environ))):
            print(line)
    except (CliError, SecretKeyError) as exc:
        print(f"vigil secrets rotate: {exc}", file=sys.stderr)
        return 2
    return 0
