"""Every durable consumer of the system, with the service that owns it.

Backpressure (is the consumer's owner running?) and health (what does a stalled consumer
stop: ingest, evaluation, delivery?) read this registry instead of parsing durable
names. A service adding a durable consumer adds it here; ``tests/test_durables.py``
checks that every durable a service declares is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["ingest", "evaluation", "delivery", "incidents", "read models"]


@dataclass(frozen=True)
class Durable:
    name: str
    stream: str
    service: str = "gateway"  # the service that runs it
    role: Role = "read models"  # what it does for the user, in a health report's words


DURABLES: tuple[Durable, ...] = (
    Durable("metrics-store", "METRICS", "metrics", "ingest"),
    Durable("alerts-evaluator", "METRICS", "alerts", "evaluation"),
    Durable("incidents-from-alerts", "ALERTS", "incidents", "incidents"),
    Durable("notifier-alerts", "ALERTS", "notifier", "delivery"),
    Durable("notifier-incidents", "INCIDENTS", "notifier", "delivery"),
    Durable("notifier-watchdog", "WATCHDOG", "notifier", "delivery"),
    Durable("gateway-alerts", "ALERTS"),
    Durable("gateway-incidents", "INCIDENTS"),
    Durable("gateway-synthetic", "SYNTHETIC"),
    Durable("gateway-notifications", "NOTIFICATIONS"),
    Durable("gateway-deadletters", "DEADLETTERS"),
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
