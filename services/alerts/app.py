"""Wiring for the alerts service. Its state is the log itself (ALERTS, SILENCES and its
configuration on CONFIG): no SQL read model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from services.alerts.api import AlertCommands
from services.alerts.explain import ExplainQueries
from services.alerts.handlers import EVALUATOR, SampleEvaluator
from services.alerts.logrules import LOG_EVALUATOR, LogEvaluator
from services.alerts.maintenance import MaintenanceCalendar
from services.alerts.rules import RuleCommands
from services.alerts.silences import SilenceBook
from services.alerts.suppression import Suppressor
from services.alerts.suppression.flapping import FlappingPolicy
from services.alerts.watchdog import WatchdogRelay
from services.alerts.writer import AlertWriter
from shared.commands import ACKNOWLEDGE_ALERT, EXPLAIN_LABELS, RESOLVE_ALERT
from shared.config import VigilConfig, load_config
from shared.events import utcnow
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.suppressionconfig import FlappingConfig

SERVICE = "alerts"


@dataclass(frozen=True)
class AlertsService:
    writer: AlertWriter
    evaluator: SampleEvaluator
    commands: AlertCommands
    rules: RuleCommands
    suppressor: Suppressor
    silences: SilenceBook
    maintenance: MaintenanceCalendar
    logs: LogEvaluator


def attach(
    runtime: ServiceRuntime,
    config: VigilConfig,
    config_file: str = "",
    clock: Callable[[], datetime] = utcnow,
) -> AlertsService:
    """Register the evaluator and the commands on ``runtime``; returns them for direct use.

    ``clock`` times every alert event, the silences and the suppression timers (tests
    move it).
    """
    writer = AlertWriter(lambda: runtime.bus, clock)
    silences = SilenceBook(lambda: runtime.bus, clock)
    maintenance = MaintenanceCalendar(lambda: runtime.bus, config.maintenance, config_file)
    watchdog = WatchdogRelay(lambda: runtime.bus)
    evaluator = SampleEvaluator(writer, config.rules, watchdog)
    logs = LogEvaluator(evaluator, config.rules, lambda: clock().timestamp())
    evaluator.listeners.append(logs.use)

    def rule_flapping(name: str) -> FlappingConfig | None:
        check = evaluator.engine.rules.get(name)
        return check.rule.flapping if check is not None else None

    suppressor = Suppressor(
        writer,
        [silences, maintenance],
        inhibit_rules=config.inhibit_rules,
        flapping=FlappingPolicy(config.flapping, rule_flapping),
        clock=clock,
    )
    writer.stamper = suppressor
    rules = RuleCommands(evaluator, lambda: runtime.bus, config.rules, config_file)
    service = AlertsService(
        writer, evaluator, AlertCommands(writer), rules, suppressor, silences, maintenance, logs
    )
    runtime.report_status(watchdog.status)
    runtime.figures.gauge(
        "vigil_alerts_open",
        "Alerts open now (firing or pending resolution), as the evaluator holds them.",
        source=lambda: [({}, float(len(writer.book.open)))],
    )
    # the API's rules join the file's before the log is read (their flapping settings
    # judge their series) and before holds are restored
    rules.register(runtime)
    runtime.on_start(writer.load)
    # silences and windows are in place before the first sample is judged
    silences.register(runtime)
    maintenance.register(runtime)

    async def restore_holds() -> None:
        await service.evaluator.restore_holds(runtime.bus)

    async def restore_counts() -> None:
        await logs.restore(runtime.bus)

    runtime.on_start(restore_holds)
    runtime.on_start(restore_counts)
    runtime.background(service.evaluator.absence_timer)
    runtime.background(suppressor.run)  # open alerts follow silences, windows, inhibition
    runtime.background(logs.timer)  # windows move, and alerts resolve, without new lines
    runtime.consume(EVALUATOR, service.evaluator.handle)
    runtime.consume(LOG_EVALUATOR, logs.handle)
    runtime.respond(ACKNOWLEDGE_ALERT, service.commands.acknowledge)
    runtime.respond(RESOLVE_ALERT, service.commands.resolve)
    runtime.respond(EXPLAIN_LABELS, ExplainQueries(evaluator, suppressor, logs).explain)
    return service


def build(
    settings: Settings,
    config: VigilConfig | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> ServiceRuntime:
    runtime = ServiceRuntime(SERVICE, settings)
    file = str(settings.config) if settings.config is not None else ""
    attach(runtime, config if config is not None else load_config(settings.config), file, clock)
    return runtime
