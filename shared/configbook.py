"""Configured items of one kind (rules, channels, contacts, schedules, escalation
policies, maintenance windows) folded from the CONFIG stream.

Two sources: the configuration file, whose items an owner provisions at start as one
event, and the API, whose items are aggregates of their own. Names are unique across
both: the file's items are read-only through the API, and provisioning deletes an API
item whose name the file takes, so every consumer folds the same set. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel

from shared import subjects
from shared.channelconfig import ChannelBase
from shared.config import RuleConfig
from shared.events import (
    ChannelCreated,
    ChannelDeleted,
    ChannelsProvisioned,
    ChannelUpdated,
    ContactCreated,
    ContactDeleted,
    ContactsProvisioned,
    ContactUpdated,
    EscalationPoliciesProvisioned,
    EscalationPolicyCreated,
    EscalationPolicyDeleted,
    EscalationPolicyUpdated,
    Event,
    MaintenanceWindowCreated,
    MaintenanceWindowDeleted,
    MaintenanceWindowsProvisioned,
    MaintenanceWindowUpdated,
    RuleCreated,
    RuleDeleted,
    RulesProvisioned,
    RuleUpdated,
    ScheduleCreated,
    ScheduleDeleted,
    SchedulesProvisioned,
    ScheduleUpdated,
)
from shared.maintenanceconfig import MaintenanceWindowConfig
from shared.pagingconfig import ContactConfig, EscalationPolicyConfig, ScheduleConfig

Source = Literal["file", "api"]


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class ConfigKind(Generic[T]):
    """What differs between kinds: names, subjects and event types.

    ``provisioned_as`` is empty for an owner's first kind (its provisioning keeps the
    subject ``config.provisioned.<service>`` that stored streams already hold) and names
    every further kind of the same owner, which provisions on a subject of its own.
    """

    noun: str
    service: str  # the owner
    subject_prefix: str
    created: type[Event]
    updated: type[Event]
    deleted: type[Event]
    provisioned: type[Event]
    item_field: str
    items_field: str
    provisioned_as: str = ""

    def subject(self, name: str) -> str:
        return f"{self.subject_prefix}.{subjects.name_token(name)}"

    @property
    def provisioned_subject(self) -> str:
        return subjects.config_provisioned(self.service, self.provisioned_as)

    @property
    def provisioned_aggregate(self) -> str:
        """The provisioning's aggregate id; it also seeds the event id, so two kinds'
        identical provisionings (both empty, say) never share an id and deduplicate."""
        return f"{self.service}.{self.provisioned_as}" if self.provisioned_as else self.service

    def item_of(self, event: Event) -> T:
        item: T = getattr(event, self.item_field)
        return item

    def items_of(self, event: Event) -> list[T]:
        items: list[T] = getattr(event, self.items_field)
        return items

    def makes(self, event: Event) -> bool:
        return isinstance(event, self.created | self.updated | self.deleted | self.provisioned)


RULES: ConfigKind[RuleConfig] = ConfigKind(
    noun="rule",
    service="alerts",
    subject_prefix=subjects.CONFIG_RULES,
    created=RuleCreated,
    updated=RuleUpdated,
    deleted=RuleDeleted,
    provisioned=RulesProvisioned,
    item_field="rule",
    items_field="rules",
)

CHANNELS: ConfigKind[ChannelBase] = ConfigKind(
    noun="channel",
    service="notifier",
    subject_prefix=subjects.CONFIG_CHANNELS,
    created=ChannelCreated,
    updated=ChannelUpdated,
    deleted=ChannelDeleted,
    provisioned=ChannelsProvisioned,
    item_field="channel",
    items_field="channels",
)

CONTACTS: ConfigKind[ContactConfig] = ConfigKind(
    noun="contact",
    service="notifier",
    subject_prefix=subjects.CONFIG_CONTACTS,
    created=ContactCreated,
    updated=ContactUpdated,
    deleted=ContactDeleted,
    provisioned=ContactsProvisioned,
    item_field="contact",
    items_field="contacts",
    provisioned_as="contacts",
)

SCHEDULES: ConfigKind[ScheduleConfig] = ConfigKind(
    noun="schedule",
    service="notifier",
    subject_prefix=subjects.CONFIG_SCHEDULES,
    created=ScheduleCreated,
    updated=ScheduleUpdated,
    deleted=ScheduleDeleted,
    provisioned=SchedulesProvisioned,
    item_field="schedule",
    items_field="schedules",
    provisioned_as="schedules",
)

POLICIES: ConfigKind[EscalationPolicyConfig] = ConfigKind(
    noun="policy",
    service="notifier",
    subject_prefix=subjects.CONFIG_POLICIES,
    created=EscalationPolicyCreated,
    updated=EscalationPolicyUpdated,
    deleted=EscalationPolicyDeleted,
    provisioned=EscalationPoliciesProvisioned,
    item_field="policy",
    items_field="policies",
    provisioned_as="policies",
)

MAINTENANCE: ConfigKind[MaintenanceWindowConfig] = ConfigKind(
    noun="maintenance window",
    service="alerts",
    subject_prefix=subjects.CONFIG_MAINTENANCE,
    created=MaintenanceWindowCreated,
    updated=MaintenanceWindowUpdated,
    deleted=MaintenanceWindowDeleted,
    provisioned=MaintenanceWindowsProvisioned,
    item_field="window",
    items_field="windows",
    provisioned_as="maintenance",
)

KINDS: tuple[ConfigKind[Any], ...] = (RULES, CHANNELS, CONTACTS, SCHEDULES, POLICIES, MAINTENANCE)


@dataclass
class Position:
    """An aggregate subject's version and last stream sequence: for the next append."""

    version: int = 0
    last_seq: int = 0


@dataclass
class ConfigBook(Generic[T]):
    """The current items of one kind, in their stored form (secrets encrypted)."""

    kind: ConfigKind[T]
    file_items: dict[str, T] = field(default_factory=dict)
    file_path: str = ""
    provisioned: Position = field(default_factory=Position)
    api_items: dict[str, T] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)  # by subject

    def apply(self, event: Event, seq: int) -> None:
        """Fold one event stored at stream sequence ``seq``; other kinds are ignored."""
        kind = self.kind
        if isinstance(event, kind.provisioned):
            self.provisioned = Position(self.provisioned.version + 1, seq)
            self.file_path = str(getattr(event, "file", ""))
            self.file_items = {_name(i): i for i in kind.items_of(event)}
            return
        if isinstance(event, kind.created | kind.updated):
            item = kind.item_of(event)
            name = _name(item)
            self.api_items[name] = item
        elif isinstance(event, kind.deleted):
            name = str(getattr(event, "name", ""))
            self.api_items.pop(name, None)
        else:
            return
        position = self.positions.setdefault(kind.subject(name), Position())
        position.version = event.version
        position.last_seq = seq

    def position(self, name: str) -> Position:
        return self.positions.get(self.kind.subject(name), Position())

    def source_of(self, name: str) -> Source | None:
        if name in self.file_items:
            return "file"
        if name in self.api_items:
            return "api"
        return None

    def items(self) -> list[T]:
        """Every current item: the file's first, in file order, then the API's."""
        shadowed = [i for n, i in self.api_items.items() if n not in self.file_items]
        return [*self.file_items.values(), *shadowed]

    def managed_by_file(self, name: str) -> str:
        """Why an item cannot be changed through the API."""
        where = f" {self.file_path}" if self.file_path else ""
        return (
            f"name: {self.kind.noun} {name!r} is managed by the configuration file{where}; "
            "change it there"
        )


def _name(item: Any) -> str:
    return str(item.name)
