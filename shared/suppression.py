"""What an alert event's ``suppressed_by`` means to those who page: one reading for the
notifier, the escalation engine, incidents and the explain answers.

- An event with reasons pages nobody and starts nothing.
- ``AlertSuppressionChanged`` to no reasons while the alert fires pages once, as the
  alert firing now; so does ``AlertSettled`` when the series settles firing.
- ``AlertFlapping`` is the one notice about flapping: its own flapping reason does not
  keep it from being notified (a silence or a window still does).
"""

from __future__ import annotations

from shared.events import (
    AlertEvent,
    AlertFlapping,
    AlertSettled,
    AlertSuppressionChanged,
    Event,
)


def muted(event: AlertEvent) -> bool:
    """The alert pages nobody as of this event: no escalation runs for it."""
    return bool(event.suppressed_by)


def pages_now(event: AlertEvent) -> bool:
    """This event makes an alert that was kept quiet page now, as if it fired now."""
    return (
        isinstance(event, AlertSuppressionChanged | AlertSettled)
        and not event.suppressed_by
        and event.status == "firing"
    )


def notified_as(event: Event) -> str | None:
    """The event type a channel's ``events`` must list to be sent ``event``; None: it is
    sent to nobody."""
    if not isinstance(event, AlertEvent):
        return event.type
    if isinstance(event, AlertSuppressionChanged):
        return "AlertFired" if pages_now(event) else None
    if isinstance(event, AlertFlapping):
        return None if any(r.kind != "flapping" for r in event.suppressed_by) else event.type
    return None if event.suppressed_by else event.type
