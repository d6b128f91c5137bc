"""The suppressor: why an alert pages nobody, stamped on every alert event, and kept up
to date on every open alert as silences, windows, inhibiting alerts and flapping change.

- ``stamp`` (called by the writer before it appends) sets ``suppressed_by`` to the
  reasons active at the event's time;
- ``observe`` (called after each append, and for each event when the log is replayed
  at start) keeps what decides those reasons: the open alerts, the inhibition index,
  each series' flapping, and the reasons each open alert was last stamped with;
- ``reconcile`` (one task, woken by a change or the next deadline) appends
  ``AlertSuppressionChanged`` where an open alert's reasons differ from its stamp,
  ``AlertFlapping`` once per flapping run and ``AlertSettled`` when it ends.

Everything it keeps is a function of the ALERTS log (and the books' own logs), so a
restarted service rebuilds the same state and neither pages again nor forgets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.alerts.domain import Alert, event_id_for
from services.alerts.suppression.flapping import FlapDetector, FlappingPolicy
from services.alerts.suppression.inhibition import Inhibitions
from services.alerts.suppression.sources import SuppressionSource, matching_labels
from services.alerts.suppression.timers import Alarm
from shared.aggregate import Outcome
from shared.events import (
    AlertAcknowledged,
    AlertEvent,
    AlertFired,
    AlertFlapping,
    AlertResolved,
    AlertSettled,
    AlertSuppressionChanged,
    Event,
    SuppressionRef,
    utcnow,
)
from shared.suppressionconfig import FlappingConfig, InhibitRuleConfig

log = logging.getLogger(__name__)

RECONCILE_BATCH = 100  # appends per hold of the writer's lock
KIND_ORDER = {"silence": 0, "maintenance": 1, "inhibition": 2, "flapping": 3}
# made here, already stamped: the writer leaves their reasons as they are
OWN_EVENTS = (AlertSuppressionChanged, AlertFlapping, AlertSettled)

Refs = tuple[SuppressionRef, ...]


class AlertLog(Protocol):
    """The writer's side the suppressor appends through (services/alerts/writer.py)."""

    @property
    def lock(self) -> Any: ...

    async def execute(
        self, alert_id: str, decide: Callable[[Alert | None], Sequence[Event]]
    ) -> Outcome[Alert | None]: ...


def canonical(refs: Iterable[SuppressionRef]) -> Refs:
    """One order for the same reasons, whatever order the books gave them in."""
    unique = dict.fromkeys(refs)
    return tuple(
        sorted(unique, key=lambda r: (KIND_ORDER.get(r.kind, 9), r.id, r.detail, str(r.until)))
    )


def without_flapping(refs: Iterable[SuppressionRef]) -> list[SuppressionRef]:
    return [r for r in refs if r.kind != "flapping"]


@dataclass
class OpenAlert:
    alert_id: str
    rule: str
    fingerprint: str
    metric: str
    severity: str
    status: str
    match: dict[str, str]


class Suppressor:
    def __init__(
        self,
        writer: AlertLog,
        sources: Sequence[SuppressionSource] = (),
        inhibit_rules: Sequence[InhibitRuleConfig] = (),
        flapping: FlappingConfig | FlappingPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.writer = writer
        self.clock = clock
        self.sources: list[SuppressionSource] = []
        self.inhibit_rules = list(inhibit_rules)
        self.flapping_config = flapping or FlappingConfig()
        self.alarm = Alarm(clock)
        self.reset()
        for source in sources:
            self.add_source(source)

    def reset(self) -> None:
        """Forget everything learnt from the log (before it is replayed again)."""
        self.open: dict[str, OpenAlert] = {}
        self.stamps: dict[str, Refs] = {}  # open alert -> the reasons on its latest event
        self.inhibitions = Inhibitions(self.inhibit_rules)
        self.flaps = FlapDetector(self.flapping_config)
        self._dirty: set[str] = set()
        self._all_dirty = True
        self._source_deadline: datetime | None = None

    def add_source(self, source: SuppressionSource) -> None:
        source.on_change = self.sources_changed
        self.sources.append(source)
        self._all_dirty = True
        self.alarm.wake()

    async def sources_changed(self) -> None:
        """A silence or window was created, changed or ended: look at every open alert."""
        self._all_dirty = True
        self.alarm.wake()

    # --- reasons -------------------------------------------------------------------

    def match_of(
        self, rule: str, severity: str, metric: str, labels: Mapping[str, str]
    ) -> dict[str, str]:
        """The alert's labels (its rule's static ones among them) with alertname,
        severity and metric: what silences, windows and inhibition match."""
        return matching_labels(labels, rule, severity, metric)

    def reasons(
        self, match: dict[str, str], alert_id: str, fingerprint: str, now: datetime, flapping: bool
    ) -> Refs:
        """Every reason an alert with these matching labels pages nobody at ``now``."""
        refs: list[SuppressionRef] = []
        for source in self.sources:
            try:
                refs.extend(source.active(match, now))
            except Exception:  # a broken book must not stop paging: the alert pages
                log.exception("a suppression source failed; not suppressing by it")
        refs.extend(self.inhibitions.refs(match, alert_id))
        if flapping:
            refs.append(self.flaps.ref(fingerprint))
        return canonical(refs)

    def reasons_now(
        self, rule: str, severity: str, metric: str, labels: Mapping[str, str], fingerprint: str
    ) -> Refs:
        """What would keep an alert of ``rule`` on ``labels`` from paging now (explain)."""
        match = self.match_of(rule, severity, metric, labels)
        flapping = self.flaps.is_flapping(fingerprint)
        return self.reasons(match, "", fingerprint, self.clock(), flapping)

    # --- the writer's hooks --------------------------------------------------------

    def stamp(self, event: AlertEvent) -> AlertEvent:
        """``event`` with ``suppressed_by`` set to the reasons at its time."""
        if isinstance(event, OWN_EVENTS):
            return event
        match = self.match_of(event.rule, event.severity, event.metric, event.labels)
        flapping = self.flaps.would_flap(event)
        refs = self.reasons(match, event.aggregate_id, event.fingerprint, event.time, flapping)
        return event.model_copy(update={"suppressed_by": list(refs)})

    def observe(self, event: AlertEvent) -> None:
        """Learn from one event now on the log (appended, or replayed at start)."""
        began_flapping = self.flaps.observe(event)
        alert_id = event.aggregate_id
        touched: set[str] = set()
        known = self.open.get(alert_id)
        if isinstance(event, AlertFired):
            fired = OpenAlert(
                alert_id,
                event.rule,
                event.fingerprint,
                event.metric,
                event.severity,
                "firing",
                self.match_of(event.rule, event.severity, event.metric, event.labels),
            )
            self.open[alert_id] = fired
            self.stamps[alert_id] = canonical(event.suppressed_by)
            touched = self.inhibitions.place(alert_id, fired.rule, fired.match)
        elif known is not None:
            info = known
            if isinstance(event, AlertResolved):
                del self.open[alert_id]
                self.stamps.pop(alert_id, None)
                self._dirty.discard(alert_id)
                touched = self.inhibitions.remove(alert_id)
            else:
                if event.severity != info.severity:
                    info.severity = event.severity
                    info.match = self.match_of(info.rule, event.severity, info.metric, event.labels)
                    touched = self.inhibitions.place(alert_id, info.rule, info.match)
                if isinstance(event, AlertAcknowledged):
                    info.status = "acknowledged"
                self.stamps[alert_id] = canonical(event.suppressed_by)
        if touched:
            self._dirty |= touched
        if touched or began_flapping:
            self.alarm.wake()

    # --- keeping open alerts up to date ------------------------------------------------

    def next_deadline(self) -> datetime | None:
        found = [d for d in (self._source_deadline, self.flaps.next_deadline()) if d is not None]
        return min(found, default=None)

    async def run(self) -> None:
        """The one task: reconcile when woken or when the next deadline passes."""
        await self.alarm.run(self._reconcile_locked, self.next_deadline)

    async def _reconcile_locked(self) -> None:
        async with self.writer.lock:
            await self.reconcile(RECONCILE_BATCH)

    async def reconcile(self, budget: int | None = None) -> int:
        """Append what changed (the writer's lock held); returns how many events.

        With a ``budget``, stops after that many appends and asks to be run again, so
        the evaluator gets the lock between batches when a silence touches many alerts.
        """
        now = self.clock()
        if self._source_deadline is not None and now >= self._source_deadline:
            self._all_dirty = True
        if self._all_dirty:
            self._dirty |= set(self.open)
            self._all_dirty = False
        appended = 0
        for alert_id in sorted(self._dirty):
            if budget is not None and appended >= budget:
                self.alarm.wake()
                return appended
            info = self.open.get(alert_id)
            if info is not None:
                flapping = self.flaps.is_flapping(info.fingerprint)
                refs = self.reasons(info.match, alert_id, info.fingerprint, now, flapping)
                if set(refs) != set(self.stamps.get(alert_id, ())):
                    appended += await self._changed(alert_id, refs, now)
            self._dirty.discard(alert_id)
        for fp in self.flaps.to_announce():
            appended += await self._flapping(fp, now)
        for fp in self.flaps.settled(now):
            appended += await self._settled(fp, now)
        self._source_deadline = self._next_change(now)
        return appended

    def _next_change(self, now: datetime) -> datetime | None:
        found: list[datetime] = []
        for source in self.sources:
            try:
                deadline = source.next_change(now)
            except Exception:
                log.exception("a suppression source failed to say when it changes next")
                continue
            if deadline is not None:
                found.append(deadline)
        return min(found, default=None)

    async def _append(self, alert_id: str, make: Callable[[Alert, int], AlertEvent | None]) -> int:
        """Append what ``make`` decides on the alert as the log has it (the alert log
        decides again on a Conflict); returns how many events (none: no such alert)."""

        def decide(alert: Alert | None) -> list[AlertEvent]:
            event = None if alert is None else make(alert, alert.version + 1)
            return [] if event is None else [event]

        outcome = await self.writer.execute(alert_id, decide)
        return len(outcome.appended)

    def _identity(self, alert: Alert, version: int, kind: str, now: datetime) -> dict[str, Any]:
        return {
            "id": event_id_for(alert.alert_id, version, kind),
            "aggregate_id": alert.alert_id,
            "version": version,
            "time": now,
            "rule": alert.rule,
            "fingerprint": alert.fingerprint,
            "metric": alert.metric,
            "labels": dict(alert.labels),
            "severity": alert.severity,
        }

    async def _changed(self, alert_id: str, refs: Refs, now: datetime) -> int:
        def make(alert: Alert, version: int) -> AlertEvent | None:
            if not alert.is_open:
                return None
            return AlertSuppressionChanged(
                **self._identity(alert, version, "suppression-changed", now),
                suppressed_by=list(refs),
                previous=list(self.stamps.get(alert_id, ())),
                status="acknowledged" if alert.status == "acknowledged" else "firing",
            )

        appended = await self._append(alert_id, make)
        if appended:
            log.info(
                "alert suppression changed",
                extra={"alert_id": alert_id, "suppressed_by": [r.kind for r in refs]},
            )
        return appended

    def _match_alert(self, alert: Alert) -> dict[str, str]:
        return self.match_of(alert.rule, alert.severity, alert.metric, alert.labels)

    async def _flapping(self, fingerprint: str, now: datetime) -> int:
        alert_id = self.flaps.latest_alert(fingerprint)

        def make(alert: Alert, version: int) -> AlertEvent:
            refs = self.reasons(self._match_alert(alert), alert_id, fingerprint, now, True)
            return AlertFlapping(
                **self._identity(alert, version, "flapping", now),
                suppressed_by=list(refs),
                changes=max(1, self.flaps.counted(fingerprint)),
                window_s=self.flaps.window_of(fingerprint),
            )

        appended = await self._append(alert_id, make)
        if not appended:  # its alert is gone from the log: nothing to announce it on
            self.flaps.mark_announced(fingerprint)
        log.info("series flapping", extra={"fingerprint": fingerprint, "alert_id": alert_id})
        return appended

    async def _settled(self, fingerprint: str, now: datetime) -> int:
        alert_id = self.flaps.latest_alert(fingerprint)

        def make(alert: Alert, version: int) -> AlertEvent:
            refs = self.reasons(self._match_alert(alert), alert_id, fingerprint, now, False)
            return AlertSettled(
                **self._identity(alert, version, "settled", now),
                suppressed_by=list(refs),
                status=alert.status,
            )

        appended = await self._append(alert_id, make)
        if not appended:
            self.flaps.mark_settled(fingerprint)
        log.info("series settled", extra={"fingerprint": fingerprint, "alert_id": alert_id})
        return appended

    # --- tests and rebuild checks ------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """All the state, comparable between a live suppressor and one rebuilt from the log."""
        return {
            "open": {
                k: (v.fingerprint, v.severity, v.status, sorted(v.match.items()))
                for k, v in sorted(self.open.items())
            },
            "stamps": {k: list(v) for k, v in sorted(self.stamps.items())},
            "inhibitions": self.inhibitions.snapshot(),
            "flapping": self.flaps.snapshot(),
        }
