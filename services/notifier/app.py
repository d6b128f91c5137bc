"""Wiring for the notifier: its consumers, one HTTP session, the lanes and the delivery ledger."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from services.notifier.channel_commands import ChannelCommands, ChannelSecrets
from services.notifier.datadog_feed import SERIES_CONSUMER, DatadogFeed
from services.notifier.deadman import WATCHDOG_CONSUMER, DeadmanSwitch
from services.notifier.escalation import EscalationEngine
from services.notifier.handlers import NotificationDispatcher, consumer_specs
from services.notifier.paging_commands import PagingCommands
from services.notifier.paging_directory import PagingDirectory
from services.notifier.projections import DeliveryLedger
from shared.bus import log_session
from shared.channelconfig import ChannelBase
from shared.config import ConfigError, VigilConfig, load_config
from shared.db import create_engine
from shared.envchannels import channels_from_env
from shared.events import NotificationDelivered, NotificationFailed, NotificationQueued, utcnow
from shared.outbound import OutboundGuard
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.streams import NOTIFICATIONS

SERVICE = "notifier"

log = logging.getLogger(__name__)


def with_env_channels(
    channels: Sequence[ChannelBase], environ: Mapping[str, str]
) -> list[ChannelBase]:
    """The file's channels and those the environment variables make; a name in both is an
    error that names it, not a silent pick."""
    from_env = channels_from_env(environ)
    taken = {c.name for c in channels}
    for channel in from_env:
        if channel.name in taken:
            raise ConfigError(
                f"channels: {channel.name!r} is made by an environment variable and also "
                "listed in the configuration file; rename the file's"
            )
    return [*channels, *from_env]


def build(
    settings: Settings,
    config: VigilConfig | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> ServiceRuntime:
    """``clock`` drives the escalation steps (tests move it)."""
    config = config if config is not None else load_config(settings.config)
    runtime = ServiceRuntime(SERVICE, settings)
    ledger = DeliveryLedger(create_engine(settings.database_url_for(SERVICE)))
    # the seed's variables (SLACK_WEBHOOK_URL, ...) add read-only channels beside the file's
    provisioned = with_env_channels(config.channels, os.environ)
    dispatcher = NotificationDispatcher(
        provisioned,
        ledger,
        lambda: runtime.bus,
        faults=runtime.faults,
        guard=OutboundGuard.from_settings(settings, config.outbound),
        routing=config.route,
    )
    secrets = ChannelSecrets(settings.data_dir)
    file = str(settings.config) if settings.config is not None else ""
    channels = ChannelCommands(dispatcher, lambda: runtime.bus, provisioned, file, secrets)
    deadman = DeadmanSwitch(config.deadman, lambda: dispatcher.session, runtime.faults)
    runtime.on_start(ledger.create)
    runtime.watch_database(ledger.engine)
    runtime.on_start(dispatcher.open)
    channels.register(runtime)  # the API's channels join the file's before delivery starts
    # who gets paged: contacts, schedules and escalation policies, live in ``directory``
    directory = PagingDirectory()
    paging = PagingCommands(
        directory,
        lambda: runtime.bus,
        config.contacts,
        config.schedules,
        config.escalation_policies,
        file,
    )
    paging.register(runtime)
    escalation = EscalationEngine(lambda: runtime.bus, ledger.engine, directory, clock=clock)
    dispatcher.escalation = escalation  # routes pick policies; the engine pages through them
    runtime.on_start(escalation.start)
    runtime.on_stop(escalation.stop)
    runtime.background(escalation.run_timers)
    runtime.on_start(dispatcher.start_lanes)  # once every channel is known
    runtime.on_stopping(dispatcher.stop_sending)
    runtime.on_stop(dispatcher.close)
    runtime.on_stop(ledger.flush_marks)
    runtime.on_stop(ledger.dispose)
    specs = consumer_specs(provisioned)

    async def release_held() -> None:
        await dispatcher.release_held(runtime.bus.js, specs)

    runtime.on_start(release_held)

    async def broker_lost() -> None:
        dispatcher.suspect_everything()

    async def broker_back() -> None:
        await dispatcher.suspect_all_tried(runtime.bus.js, specs)

    runtime.on_broker_loss(broker_lost, broker_back)
    for spec in specs:
        runtime.consume(spec, dispatcher.handler(spec))
    runtime.consume(WATCHDOG_CONSUMER, deadman.on_watchdog)
    series = DatadogFeed(provisioned, lambda: dispatcher.session)
    if series.wanted:
        runtime.on_start(series.start)
        runtime.consume(SERIES_CONSUMER, series.on_samples)
        runtime.background(series.run_forever)
        runtime.report_status(series.status)
    runtime.report_status(deadman.status)
    runtime.background(ledger.flush_marks_forever)
    return runtime


async def rebuild(settings: Settings) -> None:
    """Drop the ledger and the escalations and recreate them from NOTIFICATIONS and PAGING.

    Queued rows come back with what they need to be sent; the next start sends them.
    """
    ledger = DeliveryLedger(create_engine(settings.database_url_for(SERVICE)))
    try:
        async with log_session(settings, f"{SERVICE}-rebuild") as bus:
            await ledger.store.reset()
            applied = 0
            async for recorded in bus.replay(NOTIFICATIONS.name):
                if isinstance(
                    recorded.event, NotificationQueued | NotificationDelivered | NotificationFailed
                ):
                    await ledger.apply_recorded(recorded.event, recorded.seq)
                    applied += 1
            await EscalationEngine(lambda: bus, ledger.engine, PagingDirectory()).rebuild()
        log.info("rebuilt delivery ledger", extra={"service": SERVICE, "events": applied})
    finally:
        await ledger.dispose()
