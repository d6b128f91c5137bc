"""The ``incidents-from-alerts`` consumer: a critical alert opens one incident, resolved with it."""

from __future__ import annotations

import logging

from services.incidents.domain import Cause, Incident, OpenIncidentAs, decide
from services.incidents.store import IncidentStore
from shared import subjects
from shared.commands import ChangeIncidentStatus
from shared.config import IncidentPolicy
from shared.consumer import ConsumerSpec, Delivery
from shared.errors import Conflict
from shared.events import (
    AlertEscalated,
    AlertEvent,
    AlertFired,
    AlertResolved,
    Event,
    derived_id,
)
from shared.streams import ALERTS

log = logging.getLogger(__name__)

FROM_ALERTS = ConsumerSpec(
    durable="incidents-from-alerts",
    stream=ALERTS,
    filter_subject=f"{subjects.ALERT_EVENTS}.>",
    ordered=True,
)
OPENED_BY = "vigil"


def incident_id_for(alert_id: str) -> str:
    """One incident per alert, whatever the number of deliveries."""
    return derived_id("incident", alert_id)


def incident_title(alert: AlertEvent) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    return f"{alert.rule}: {alert.metric}{{{labels}}} is critical"


class AlertIncidents:
    def __init__(self, store: IncidentStore, policy: IncidentPolicy):
        self.store = store
        self.policy = policy

    async def handle(self, event: Event, delivery: Delivery) -> None:
        """Open an incident when an alert turns critical; resolve it when the alert resolves."""
        if isinstance(event, AlertFired | AlertEscalated) and event.severity == "critical":
            await self._open(event)
        elif isinstance(event, AlertResolved) and self.policy.auto_resolve:
            await self._resolve(event)

    async def _open(self, alert: AlertFired | AlertEscalated) -> None:
        incident_id = incident_id_for(alert.aggregate_id)
        value = f"{alert.value:g}"
        opening = OpenIncidentAs(
            incident_id=incident_id,
            title=incident_title(alert),
            severity="critical",
            by=OPENED_BY,
            description=(
                f"Alert {alert.aggregate_id} went critical: {alert.metric} = {value} "
                f"(threshold {alert.threshold:g})."
            ),
            alert_id=alert.aggregate_id,
            fingerprint=alert.fingerprint,
        )
        cause = Cause(trigger_id=alert.id, correlation_id=alert.correlation_id)
        (opened,) = decide(None, opening, cause)
        try:
            await self.store.append(opened, expected_last_subject_seq=0)
        except Conflict:
            log.info(
                "incident already open for alert",
                extra={"incident_id": incident_id, "alert_id": alert.aggregate_id},
            )

    async def _resolve(self, alert: AlertResolved) -> None:
        incident_id = incident_id_for(alert.aggregate_id)
        how = "recovered" if alert.reason == "recovered" else f"was resolved by {alert.by}"
        command = ChangeIncidentStatus(
            incident_id=incident_id,
            status="resolved",
            by=OPENED_BY,
            message=f"Alert {alert.rule} {how}.",
        )
        cause = Cause(trigger_id=alert.id, correlation_id=alert.correlation_id)

        def resolution(incident: Incident | None) -> list[Event]:
            if incident is None or incident.status == "resolved":
                return []
            return decide(incident, command, cause)

        result = await self.store.execute(incident_id, resolution)
        log.info(
            "alert resolved; incident checked",
            extra={"incident_id": incident_id, "alert_id": alert.aggregate_id, "seq": result.seq},
        )
