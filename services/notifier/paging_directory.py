"""Who is paged and how, as the notifier holds it now: contacts, schedules and escalation
policies by name, the configuration file's and the API's together.

The owners (``paging_commands``) replace a kind's mapping as a whole on every change, before
the change's command is answered; a reader holding a mapping keeps one consistent set, and
asking again gets the newest. The escalation engine reads policies and schedules here when
a step fires, so an edit applies to the next step without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Literal, TypeVar

from shared.pagingconfig import ContactConfig, EscalationPolicyConfig, ScheduleConfig

log = logging.getLogger(__name__)

PagingKind = Literal["contacts", "schedules", "policies"]
Listener = Callable[[PagingKind], None]
Item = TypeVar("Item", ContactConfig, ScheduleConfig, EscalationPolicyConfig)


class PagingDirectory:
    def __init__(
        self,
        contacts: Sequence[ContactConfig] = (),
        schedules: Sequence[ScheduleConfig] = (),
        policies: Sequence[EscalationPolicyConfig] = (),
    ):
        self._contacts = _by_name(contacts)
        self._schedules = _by_name(schedules)
        self._policies = _by_name(policies)
        self._listeners: list[Listener] = []

    # --- reading ---------------------------------------------------------------

    def contacts(self) -> Mapping[str, ContactConfig]:
        return self._contacts

    def schedules(self) -> Mapping[str, ScheduleConfig]:
        return self._schedules

    def policies(self) -> Mapping[str, EscalationPolicyConfig]:
        return self._policies

    def contact(self, user: str) -> ContactConfig | None:
        return self._contacts.get(user)

    def schedule(self, name: str) -> ScheduleConfig | None:
        return self._schedules.get(name)

    def policy(self, name: str) -> EscalationPolicyConfig | None:
        return self._policies.get(name)

    def on_change(self, listener: Listener) -> None:
        """``listener(kind)`` after each change of a kind (called synchronously)."""
        self._listeners.append(listener)

    # --- the owners' side --------------------------------------------------------

    async def use_contacts(self, items: Sequence[ContactConfig]) -> None:
        self._contacts = _by_name(items)
        self._changed("contacts")

    async def use_schedules(self, items: Sequence[ScheduleConfig]) -> None:
        self._schedules = _by_name(items)
        self._changed("schedules")

    async def use_policies(self, items: Sequence[EscalationPolicyConfig]) -> None:
        self._policies = _by_name(items)
        self._changed("policies")

    def _changed(self, kind: PagingKind) -> None:
        for listener in self._listeners:
            try:
                listener(kind)
            except Exception:  # a listener's fault must not undo an applied change
                log.exception("paging directory listener failed", extra={"kind": kind})


def _by_name(items: Sequence[Item]) -> Mapping[str, Item]:
    return MappingProxyType({item.name: item for item in items})
