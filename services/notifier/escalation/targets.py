"""Who a step pages, decided when it fires: channels as they are, people through their
contact methods, schedules through whoever is on call at that moment."""

from __future__ import annotations

from datetime import datetime

from services.notifier.escalation.directory import EscalationDirectory
from shared.events.paging import PageTarget
from shared.oncall import on_call
from shared.pagingconfig import EscalationTarget


def resolve(
    notify: list[EscalationTarget], directory: EscalationDirectory, at: datetime
) -> tuple[list[PageTarget], list[str]]:
    """The targets of one step and, for what could not be resolved, why.

    A target that resolves to nothing never stops the others: the step still fires for
    them. The same (channel, recipient) reached twice is paged once.
    """
    contacts = directory.contacts()
    schedules = directory.schedules()
    found: list[PageTarget] = []
    unresolved: list[str] = []

    def person(name: str, via: str) -> None:
        contact = contacts.get(name)
        if contact is None:
            where = via if via.startswith("schedule:") else f"user:{name}"
            unresolved.append(f"{where}: {name!r} has no contact methods configured")
            return
        for method in contact.methods:
            found.append(
                PageTarget(channel=method.channel, recipient=method.address, user=name, via=via)
            )

    for target in notify:
        if target.channel is not None:
            found.append(PageTarget(channel=target.channel, via="channel"))
        elif target.user is not None:
            person(target.user, f"user:{target.user}")
        elif target.schedule is not None:
            via = f"schedule:{target.schedule}"
            schedule = schedules.get(target.schedule)
            if schedule is None:
                unresolved.append(f"{via}: no such schedule")
                continue
            holder = on_call(schedule, at)
            if holder is None:
                unresolved.append(f"{via}: nobody is on call at {at.isoformat()}")
                continue
            person(holder.user, via)
    unique: dict[tuple[str, str], PageTarget] = {}
    for page in found:
        unique.setdefault((page.channel, page.recipient), page)
    return list(unique.values()), unresolved
