"""Every durable consumer of the system, with the service that owns it.

Backpressure (is the consumer's owner running?) and health (what does a stalled consumer
stop: ingest, evaluation, delivery?) read this registry instead of parsing durable
names. A service adding a durable consumer adds it here; ``tests/test_durables.py``
checks that every durable a service declares is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# "forwarding": a copy for another system (a remote store); stalled, it degrades Vigil
# without stopping alerts or pages
Role = Literal["ingest", "evaluation", "delivery", "incidents", "read models", "forwarding"]


@dataclass(frozen=True)
class Durable:
    name: str
    stream: str
    service: str  # the service that runs it
    filter_subject: str
    ordered: bool  # one message in flight (checkpointed projections, the evaluator)
    role: Role = "read models"  # what it does for the user, in a health report's words


DURABLES: tuple[Durable, ...] = (
    Durable("metrics-store", "METRICS", "metrics", "metrics.samples.>", True, "ingest"),
    Durable("metrics-remote-write", "METRICS", "metrics", "metrics.samples.>", False, "forwarding"),
    Durable("logs-store", "LOGS", "metrics", "logs.entries.>", True, "ingest"),
    Durable("alerts-evaluator", "METRICS", "alerts", "metrics.samples.>", True, "evaluation"),
    Durable("alerts-logs", "LOGS", "alerts", "logs.entries.>", True, "evaluation"),
    Durable("incidents-from-alerts", "ALERTS", "incidents", "alerts.events.>", True, "incidents"),
    Durable("notifier-alerts", "ALERTS", "notifier", "alerts.events.>", False, "delivery"),
    Durable("notifier-incidents", "INCIDENTS", "notifier", "incidents.events.>", False, "delivery"),
    Durable("notifier-pages", "PAGING", "notifier", "paging.events.>", False, "delivery"),
    Durable("notifier-datadog", "METRICS", "notifier", "metrics.samples.>", False, "delivery"),
    Durable("notifier-watchdog", "WATCHDOG", "notifier", "vigil.watchdog.>", False, "delivery"),
    Durable("gateway-alerts", "ALERTS", "gateway", "alerts.events.>", True),
    Durable("gateway-incidents", "INCIDENTS", "gateway", "incidents.events.>", True),
    Durable("gateway-synthetic", "SYNTHETIC", "gateway", "synthetic.>", True),
    Durable("gateway-paging", "PAGING", "gateway", "paging.events.>", True),
    Durable("gateway-notifications", "NOTIFICATIONS", "gateway", "notifications.events.>", True),
    Durable("gateway-deadletters", "DEADLETTERS", "gateway", "deadletter.>", True),
    Durable("gateway-identity", "IDENTITY", "gateway", "identity.>", True),
    Durable("gateway-audit", "AUDIT", "gateway", "audit.>", True),
    Durable("gateway-rules", "CONFIG", "gateway", "config.>", True),
    Durable("gateway-channels", "CONFIG", "gateway", "config.>", True),
    Durable("gateway-contacts", "CONFIG", "gateway", "config.>", True),
    Durable("gateway-schedules", "CONFIG", "gateway", "config.>", True),
    Durable("gateway-policies", "CONFIG", "gateway", "config.>", True),
    Durable("gateway-silences", "SILENCES", "gateway", "silences.events.>", True),
    Durable("gateway-maintenance", "CONFIG", "gateway", "config.>", True),
)

BY_NAME: dict[str, Durable] = {d.name: d for d in DURABLES}


def durable_named(name: str) -> Durable | None:
    """The registered durable, or None for one this version does not know (a consumer
    left behind by an older version, or someone else's)."""
    return BY_NAME.get(name)


def owner_of(name: str) -> str | None:
    found = BY_NAME.get(name)
    return None if found is None else found.service


def role_of(name: str) -> Role:
    found = BY_NAME.get(name)
    return "read models" if found is None else found.role
