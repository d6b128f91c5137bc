"""What a chaos run does: the load, the kills and their order, and the config it runs."""

from __future__ import annotations

from dataclasses import dataclass

from shared.services import SERVICES

METRIC = "checkout_latency_ms"
RULE = "CheckoutLatency"
CRITICAL_VALUE = 5000.0
BULK_VALUE = 100.0
SECRET = "chaos-secret"
NATS = "nats"
SUPERVISOR = "supervisor"
TARGETS = (NATS, *SERVICES, SUPERVISOR)
# One round: every target once, nats-server and the supervisor between the services, so
# consecutive kills hit different parts of the path.
ROUND = ("gateway", "alerts", NATS, "metrics", "notifier", SUPERVISOR, "incidents", "synthetic")


def config_text(receiver_port: int) -> str:
    return f"""
rules:
  - name: {RULE}
    metric: {METRIC}
    warning: 500
    critical: 1000
channels:
  - name: chaos-webhook
    type: webhook
    url: http://127.0.0.1:{receiver_port}/hook
    secret: {SECRET}
    events: [AlertFired, IncidentOpened]
"""


@dataclass(frozen=True)
class Scenario:
    duration_s: float = 100.0  # load, from the first sample to the last
    samples_per_s: int = 2000  # bulk samples, below every threshold
    bulk_batches_per_s: int = 20
    critical_every_s: float = 0.02  # one unique critical series this often
    rounds: int = 3  # kills of each target
    targets: tuple[str, ...] = TARGETS
    lead_in_s: float = 4.0  # load before the first kill
    tail_s: float = 10.0  # load after the last kill
    settle_timeout_s: float = 90.0
    quiet_s: float = 3.0  # after everything arrived, wait this long for late repeats

    def plan(self) -> list[tuple[float, str]]:
        """(seconds after the load starts, target) for every kill, evenly spaced."""
        order = [t for t in ROUND if t in self.targets]
        order += [t for t in self.targets if t not in order]
        kills = [t for _ in range(self.rounds) for t in order]
        if not kills:
            return []
        window = self.duration_s - self.lead_in_s - self.tail_s
        step = window / max(1, len(kills) - 1)
        return [(self.lead_in_s + i * step, target) for i, target in enumerate(kills)]
