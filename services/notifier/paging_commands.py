"""The notifier owns who gets paged: contacts, schedules and escalation policies, the
file's provisioned at start and those made through the API (``vigil.cmd.contacts.*``,
``vigil.cmd.schedules.*``, ``vigil.cmd.policies.*``). A change is in the paging
directory before its command is answered. None of them holds a secret: items are stored
as they are."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from services.notifier.paging_directory import PagingDirectory
from shared import commands
from shared.bus import EventBus
from shared.commands import CommandResult, parse_command
from shared.configbook import CONTACTS, POLICIES, SCHEDULES, ConfigKind
from shared.configowner import ConfigOwner
from shared.pagingconfig import ContactConfig, EscalationPolicyConfig, ScheduleConfig
from shared.runtime import ServiceRuntime

T = TypeVar("T", bound=BaseModel)
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class KindCommands(Generic[T]):
    """One kind's create/update/delete: subjects, command models and the owner."""

    owner: ConfigOwner[T]
    create_subject: str
    update_subject: str
    delete_subject: str
    create_model: type[BaseModel]
    update_model: type[BaseModel]
    delete_model: type[BaseModel]

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        command: Any = parse_command(self.create_model, body)
        item = getattr(command, self.owner.kind.item_field)
        return _answer(await self.owner.create(item, command.by))

    async def update(self, body: dict[str, Any]) -> dict[str, Any]:
        command: Any = parse_command(self.update_model, body)
        item = getattr(command, self.owner.kind.item_field)
        return _answer(await self.owner.update(command.name, item, command.by))

    async def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        command: Any = parse_command(self.delete_model, body)
        return _answer(await self.owner.delete(command.name, command.by))

    def register(self, runtime: ServiceRuntime) -> None:
        runtime.on_start(self.owner.start)
        runtime.respond(self.create_subject, self.create)
        runtime.respond(self.update_subject, self.update)
        runtime.respond(self.delete_subject, self.delete)


def _answer(result: CommandResult) -> dict[str, Any]:
    return result.model_dump()


class PagingCommands:
    """The three owners, feeding one ``PagingDirectory``."""

    def __init__(
        self,
        directory: PagingDirectory,
        bus: Callable[[], EventBus],
        file_contacts: Sequence[ContactConfig],
        file_schedules: Sequence[ScheduleConfig],
        file_policies: Sequence[EscalationPolicyConfig],
        file_path: str,
    ):
        self.directory = directory

        def owner(kind: ConfigKind[Any], items: Sequence[Any], applied: Any) -> Any:
            return ConfigOwner(kind, bus, list(items), file_path, applied)

        self.contacts: KindCommands[ContactConfig] = KindCommands(
            owner(CONTACTS, file_contacts, directory.use_contacts),
            commands.CREATE_CONTACT,
            commands.UPDATE_CONTACT,
            commands.DELETE_CONTACT,
            commands.CreateContact,
            commands.UpdateContact,
            commands.DeleteContact,
        )
        self.schedules: KindCommands[ScheduleConfig] = KindCommands(
            owner(SCHEDULES, file_schedules, directory.use_schedules),
            commands.CREATE_SCHEDULE,
            commands.UPDATE_SCHEDULE,
            commands.DELETE_SCHEDULE,
            commands.CreateSchedule,
            commands.UpdateSchedule,
            commands.DeleteSchedule,
        )
        self.policies: KindCommands[EscalationPolicyConfig] = KindCommands(
            owner(POLICIES, file_policies, directory.use_policies),
            commands.CREATE_POLICY,
            commands.UPDATE_POLICY,
            commands.DELETE_POLICY,
            commands.CreatePolicy,
            commands.UpdatePolicy,
            commands.DeletePolicy,
        )

    def register(self, runtime: ServiceRuntime) -> None:
        """Contacts and schedules load before the policies that name them."""
        self.contacts.register(runtime)
        self.schedules.register(runtime)
        self.policies.register(runtime)
