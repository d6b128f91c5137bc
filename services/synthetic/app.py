"""Wiring for the synthetic prober: definitions from log and config, a scheduler, commands,
and the scraper of Prometheus/OpenMetrics targets (the same outbound policy)."""

from __future__ import annotations

from services.synthetic.api import CheckCommands
from services.synthetic.definitions import CheckDefinitionLog
from services.synthetic.domain import CheckCatalog
from services.synthetic.scheduler import CheckRunner, CheckScheduler
from services.synthetic.scraper import Scraper
from shared.config import VigilConfig, load_config
from shared.outbound import OutboundGuard
from shared.runtime import ServiceRuntime
from shared.settings import Settings

SERVICE = "synthetic"


def build(settings: Settings, config: VigilConfig | None = None) -> ServiceRuntime:
    config = config if config is not None else load_config(settings.config)
    runtime = ServiceRuntime(SERVICE, settings)
    catalog = CheckCatalog()
    definitions = CheckDefinitionLog(catalog, lambda: runtime.bus)
    guard = OutboundGuard.from_settings(settings, config.outbound)
    runner = CheckRunner(catalog, lambda: runtime.bus, guard)
    scheduler = CheckScheduler(catalog, runner)

    async def load_and_reconcile() -> None:
        catalog.clear()  # a restarted runtime starts from the log again
        await definitions.load()
        await definitions.reconcile(config.checks)

    runtime.on_start(runner.open)
    runtime.on_start(load_and_reconcile)
    runtime.on_stop(runner.close)
    file = str(settings.config) if settings.config is not None else ""
    CheckCommands(definitions, scheduler, runner, file).register(runtime)
    runtime.background(scheduler.run_forever)
    scraper = Scraper(
        config.scrape_configs, lambda: runtime.bus, guard, settings.metrics_retention_s
    )
    runtime.on_start(scraper.open)
    runtime.on_stop(scraper.close)
    runtime.background(scraper.run_forever)
    return runtime
