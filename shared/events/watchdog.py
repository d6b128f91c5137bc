"""The watchdog's trip through the paging path: ingest, evaluation, delivery.

The gateway sends a ``vigil_watchdog`` sample (its value the send time) on a timer;
the alerts service records each one it evaluated as ``WatchdogEvaluated``; the notifier
consumes those and pings the dead-man's switch. Any stage that stops stops the pings.
"""

from __future__ import annotations

from pydantic import Field

from shared.events.base import Event

WATCHDOG_METRIC = "vigil_watchdog"
SELF_SOURCE = "vigil"  # the sample source of the watchdog and of Vigil's own figures


class WatchdogEvaluated(Event):
    """aggregate_id is the sending gateway's source name."""

    sent_at: float = Field(description="Unix seconds when the gateway sent the watchdog sample")
    evaluated_at: float = Field(description="Unix seconds when the alerts service evaluated it")
