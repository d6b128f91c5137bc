"""Request/reply commands: configure, remove and run checks."""

from __future__ import annotations

from typing import Any

from services.synthetic.definitions import CheckDefinitionLog
from services.synthetic.domain import (
    CheckDefinition,
    check_id_for,
    configure,
    refuse_file_managed,
    remove,
    require_safe_method,
)
from services.synthetic.scheduler import CheckRunner, CheckScheduler
from shared.commands import (
    CONFIGURE_CHECK,
    REMOVE_CHECK,
    RUN_CHECK,
    CommandResult,
    ConfigureCheck,
    RemoveCheck,
    RunCheck,
    parse_command,
)
from shared.runtime import ServiceRuntime
from shared.streams import SYNTHETIC


class CheckCommands:
    def __init__(
        self,
        definitions: CheckDefinitionLog,
        scheduler: CheckScheduler,
        runner: CheckRunner,
        config_file: str = "",
    ):
        self.definitions = definitions
        self.scheduler = scheduler
        self.runner = runner
        self.config_file = config_file

    def _result(self, check_id: str, seq: int) -> dict[str, Any]:
        version = self.definitions.catalog.position(check_id).version
        return CommandResult(
            aggregate_id=check_id, version=version, seq=seq, stream=SYNTHETIC.name
        ).model_dump()

    async def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a check, or update the one with this name; unchanged means no new event."""
        command = parse_command(ConfigureCheck, body)
        existing = self.definitions.catalog.by_name(command.name)
        check_id = existing.check_id if existing else check_id_for(command.name)
        refuse_file_managed(self.definitions.catalog, check_id, self.config_file)
        definition = CheckDefinition.from_command(command, check_id)
        require_safe_method(definition)
        _, seq = await self.definitions.append(check_id, lambda c: configure(c, definition))
        self.scheduler.sync()
        return self._result(check_id, seq)

    async def remove(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(RemoveCheck, body)
        refuse_file_managed(self.definitions.catalog, command.check_id, self.config_file)
        _, seq = await self.definitions.append(
            command.check_id, lambda c: remove(c, command.check_id)
        )
        self.scheduler.sync()
        return self._result(command.check_id, seq)

    async def run(self, body: dict[str, Any]) -> dict[str, Any]:
        command = parse_command(RunCheck, body)
        run, seq = await self.runner.run(command.check_id, "manual")
        return {
            "aggregate_id": run.aggregate_id,
            "version": run.version,
            "seq": seq,
            "stream": SYNTHETIC.name,
            "event_id": run.id,
            "check_id": run.aggregate_id,
            "name": run.name,
            "ok": run.ok,
            "status_code": run.status_code,
            "latency_ms": run.latency_ms,
            "error": run.error,
            "consecutive_failures": run.consecutive_failures,
            "trigger": run.trigger,
            "time": run.time.isoformat(),
        }

    def register(self, runtime: ServiceRuntime) -> None:
        runtime.respond(CONFIGURE_CHECK, self.configure)
        runtime.respond(REMOVE_CHECK, self.remove)
        runtime.respond(RUN_CHECK, self.run)
