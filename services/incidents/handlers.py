"""The ``incidents-from-alerts`` consumer: a critical series opens one incident at a time.

A critical alert kept quiet (``suppressed_by``: silenced, inhibited, in maintenance,
flapping) opens none; when it is no longer kept quiet and still fires, it opens one then.
"""

from __future__ import annotations

import functools
import logging

from services.incidents.domain import Cause, Incident, OpenIncidentAs, decide
from services.incidents.store import IncidentStore
from shared import subjects
from shared.aggregate import Snapshot
from shared.commands import MAX_TITLE_CHARS, AddIncidentNote, ChangeIncidentStatus
from shared.config import IncidentPolicy
from shared.consumer import ConsumerSpec, Delivery
from shared.errors import Conflict, InvalidTransition
from shared.events import (
    AlertEscalated,
    AlertEvent,
    AlertFired,
    AlertResolved,
    AlertSettled,
    AlertSuppressionChanged,
    Event,
    derived_id,
)
from shared.labels import ELLIPSIS, bounded_labels
from shared.streams import ALERTS
from shared.suppression import muted, pages_now

log = logging.getLogger(__name__)

FROM_ALERTS = ConsumerSpec(
    durable="incidents-from-alerts",
    stream=ALERTS,
    filter_subject=f"{subjects.ALERT_EVENTS}.>",
    ordered=True,
)
OPENED_BY = "vigil"

# the alert events that may open an incident
Trigger = AlertFired | AlertEscalated | AlertSuppressionChanged | AlertSettled


def incident_id_for(fingerprint: str, generation: int) -> str:
    """The incident of one series' ``generation``-th run of trouble.

    Deterministic, so a redelivered alert finds the incident it opened, and two
    writers racing to open the same run meet on one subject (the loser gets Conflict).
    """
    return derived_id("incident", fingerprint, generation)


def incident_title(alert: AlertEvent) -> str:
    """One line naming the series: its labels bounded like a notification's, the whole no
    longer than a title a user may write."""
    bounded = bounded_labels(alert.labels)
    labels = ",".join(f"{k}={v}" for k, v in bounded.labels.items())
    if bounded.truncated:
        labels += f",{ELLIPSIS} ({bounded.truncated} labels not shown in full)"
    title = f"{alert.rule}: {alert.metric}{{{labels}}} is critical"
    if len(title) <= MAX_TITLE_CHARS:
        return title
    return title[: MAX_TITLE_CHARS - len(ELLIPSIS)] + ELLIPSIS


class AlertIncidents:
    """One open incident per series (fingerprint), never two.

    A series' incidents form a chain of generations; a new one opens only once the
    previous is resolved. While one is open, later critical alerts of the series
    are noted on its timeline instead of opening another.
    """

    def __init__(self, store: IncidentStore, policy: IncidentPolicy):
        self.store = store
        self.policy = policy
        # where each series' chain was last seen: a shortcut only, every step is re-read
        self._generation: dict[str, int] = {}

    async def handle(self, event: Event, delivery: Delivery) -> None:
        """Open an incident when an alert turns critical; resolve it when the alert resolves."""
        # a message seen before may have acted on any earlier run of the series
        redelivered = delivery.deliveries > 1
        if isinstance(event, AlertFired | AlertEscalated) and event.severity == "critical":
            if not muted(event):
                await self._open_or_note(event, redelivered)
        elif isinstance(event, AlertSuppressionChanged | AlertSettled) and pages_now(event):
            if event.severity == "critical":
                await self._open_or_note(event, redelivered)
        elif isinstance(event, AlertResolved) and self.policy.auto_resolve:
            await self._resolve(event, redelivered)

    async def current(
        self, fingerprint: str, trigger_id: str, from_start: bool
    ) -> tuple[int, Incident | None]:
        """The series' open incident, else the run that already records ``trigger_id``,
        else (no incident) the free generation after the last resolved one."""
        generation = 0 if from_start else self._generation.get(fingerprint, 0)
        while True:
            incident, _ = await self.store.load(incident_id_for(fingerprint, generation))
            if incident is None or incident.status != "resolved" or incident.records(trigger_id):
                self._generation[fingerprint] = generation
                return generation, incident
            generation += 1

    async def _open_or_note(self, alert: Trigger, redelivered: bool) -> None:
        cause = Cause(trigger_id=alert.id, correlation_id=alert.correlation_id)
        for _ in range(self.store.attempts):
            generation, incident = await self.current(alert.fingerprint, alert.id, redelivered)
            if incident is not None:
                await self._note(incident.incident_id, alert, cause)
                return
            opening = self._opening(alert, generation)
            try:  # ``current`` has just found no incident there: decide on that
                opened = functools.partial(decide, command=opening, cause=cause)
                await self.store.log.execute(opening.incident_id, opened, known=Snapshot(None))
                return
            except InvalidTransition:
                continue  # opened meanwhile: look again
        raise Conflict(f"incidents of series {alert.fingerprint} kept changing")

    def _opening(self, alert: Trigger, generation: int) -> OpenIncidentAs:
        return OpenIncidentAs(
            incident_id=incident_id_for(alert.fingerprint, generation),
            title=incident_title(alert),
            severity="critical",
            by=OPENED_BY,
            description=f"Alert {alert.aggregate_id} {_what(alert)}.",
            alert_id=alert.aggregate_id,
            fingerprint=alert.fingerprint,
        )

    async def _note(self, incident_id: str, alert: Trigger, cause: Cause) -> None:
        """A later critical alert of the series joins the open incident's timeline."""
        note = AddIncidentNote(
            incident_id=incident_id,
            text=f"Alert {alert.aggregate_id} {_what(alert, again=True)}.",
            author=OPENED_BY,
        )

        def noting(incident: Incident | None) -> list[Event]:
            if incident is None or incident.status == "resolved":
                return []
            return decide(incident, note, cause)  # nothing when this alert is noted already

        await self.store.execute(incident_id, noting)

    async def _resolve(self, alert: AlertResolved, redelivered: bool) -> None:
        _, incident = await self.current(alert.fingerprint, alert.id, redelivered)
        if incident is None or incident.status == "resolved":
            return
        incident_id = incident.incident_id
        how = "recovered" if alert.reason == "recovered" else f"was resolved by {alert.by}"
        command = ChangeIncidentStatus(
            incident_id=incident_id,
            status="resolved",
            by=OPENED_BY,
            message=f"Alert {alert.rule} {how}.",
        )
        cause = Cause(trigger_id=alert.id, correlation_id=alert.correlation_id)

        def resolution(latest: Incident | None) -> list[Event]:
            if latest is None or latest.status == "resolved":
                return []
            return decide(latest, command, cause)

        result = await self.store.execute(incident_id, resolution)
        log.info(
            "alert resolved; incident checked",
            extra={
                "incident_id": incident_id,
                "alert_id": alert.aggregate_id,
                "seq": result.seq,
            },
        )


def _what(alert: Trigger, again: bool = False) -> str:
    """``went critical: cpu = 97 (threshold 90)``, or why a quiet one counts now."""
    if isinstance(alert, AlertFired | AlertEscalated):
        word = " again" if again else ""
        return (
            f"went critical{word}: {alert.metric} = {alert.value:g} (threshold {alert.threshold:g})"
        )
    if isinstance(alert, AlertSettled):
        return "is critical and stopped flapping"
    return "is critical and no longer suppressed"
