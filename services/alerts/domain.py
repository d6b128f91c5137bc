"""The alert lifecycle as pure rules: thresholds, hysteresis, ``for``, and the alert aggregate.

An alert is one episode of one rule on one label set (its fingerprint). It fires at
warning or straight at critical, may escalate to critical, never goes back down, and
resolves only once the value is back past the lowest threshold by the hysteresis, so
a value sitting on a threshold cannot flap. State changes only by applying events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal

import orjson

from services.alerts.rulecompile import (
    CompiledRule,
    Thresholds,
)
from shared.commands import AcknowledgeAlert, ResolveAlert
from shared.errors import InvalidTransition, NotFound
from shared.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertEvent,
    AlertFired,
    AlertResolved,
    Severity,
    derived_id,
)

AlertStatus = Literal["firing", "acknowledged", "resolved"]
TransitionKind = Literal["fire", "escalate", "recover"]


# --- identity ------------------------------------------------------------------------


@lru_cache(maxsize=65_536)
def _fingerprint(rule_name: str, label_items: tuple[tuple[str, str], ...]) -> str:
    return hashlib.blake2b(orjson.dumps([rule_name, label_items]), digest_size=16).hexdigest()


def fingerprint(rule_name: str, labels: Mapping[str, str]) -> str:
    """Stable across processes and label order: the same series always maps to one alert."""
    return _fingerprint(rule_name, tuple(sorted(labels.items())))


def alert_id_for(fingerprint_: str, source_seq: int, source_index: int) -> str:
    """Derived from the sample that opened the episode, so a redelivered batch repeats it."""
    return derived_id("alert", fingerprint_, source_seq, source_index)


def event_id_for(alert_id: str, version: int, what: str) -> str:
    """Deterministic per (alert, version, kind): a repeat is dropped by the server, while two
    different writers racing for one version get distinct ids and thus a Conflict."""
    return derived_id("alert-event", alert_id, version, what)


# --- the aggregate -------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    alert_id: str
    rule: str
    fingerprint: str
    metric: str
    labels: dict[str, str]
    severity: Severity
    status: AlertStatus
    version: int
    acknowledged_by: str = ""
    resolved_by: str = ""

    @property
    def is_open(self) -> bool:
        return self.status != "resolved"


def apply(alert: Alert | None, event: AlertEvent) -> Alert:
    """The only way alert state changes."""
    if isinstance(event, AlertFired) or alert is None:
        alert = Alert(
            alert_id=event.aggregate_id,
            rule=event.rule,
            fingerprint=event.fingerprint,
            metric=event.metric,
            labels=dict(event.labels),
            severity=event.severity,
            status="firing",
            version=event.version,
        )
    if isinstance(event, AlertEscalated):
        return replace(alert, severity=event.severity, version=event.version)
    if isinstance(event, AlertAcknowledged):
        return replace(
            alert, status="acknowledged", acknowledged_by=event.by, version=event.version
        )
    if isinstance(event, AlertResolved):
        return replace(alert, status="resolved", resolved_by=event.by, version=event.version)
    return replace(alert, version=event.version)


def fold(events: Iterable[AlertEvent]) -> Alert | None:
    alert: Alert | None = None
    for event in events:
        alert = apply(alert, event)
    return alert


# --- evaluation ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """Since when (the arrival of the samples) the value has held each level without a break."""

    active_since: float | None = None  # at or beyond the lowest threshold
    critical_since: float | None = None


@dataclass(frozen=True)
class Transition:
    kind: TransitionKind
    severity: Severity
    threshold: float


def evaluate(
    check: Thresholds, alert: Alert | None, pending: Pending | None, value: float, at: float
) -> tuple[Transition | None, Pending | None]:
    """One sample against one rule for one series: the transition it causes, and what stays pending.

    ``alert`` is the series' open alert, if any; ``at`` is when the sample arrived, against
    which the rule's ``for`` is measured (never the sample's own timestamp, which a client
    could set back to skip the hold).
    """
    hold = check.for_s
    if alert is not None and check.recovered(value):
        return Transition("recover", alert.severity, check.resolve_threshold), None
    held = held_since(check, alert, pending, value, at)
    if held is None:
        return None, None
    critical = held.critical_since
    if alert is not None:
        if critical is not None and at - critical >= hold:
            return Transition("escalate", "critical", check.threshold("critical")), None
        return None, held
    if critical is not None and at - critical >= hold:
        return Transition("fire", "critical", check.threshold("critical")), None
    active = held.active_since if held.active_since is not None else at
    if check.warning is not None and at - active >= hold:
        carried = Pending(critical_since=critical) if critical is not None else None
        return Transition("fire", "warning", check.threshold("warning")), carried
    return None, held


def held_since(
    check: Thresholds, alert: Alert | None, pending: Pending | None, value: float, at: float
) -> Pending | None:
    """How long each level has held, this sample included, before any transition is taken."""
    level = check.level(value)
    if alert is not None:
        if level == "critical" and alert.severity == "warning":
            return Pending(critical_since=_since(pending.critical_since if pending else None, at))
        return None
    if level is None:
        return None
    critical = None
    if level == "critical":
        critical = _since(pending.critical_since if pending else None, at)
    return Pending(
        active_since=_since(pending.active_since if pending else None, at), critical_since=critical
    )


def _since(previous: float | None, at: float) -> float:
    return at if previous is None else previous


@dataclass(slots=True)
class SampleOrigin:
    """The sample behind a transition: its place on the METRICS stream and the event carrying it.

    Not frozen: one is made for every watched sample, and a frozen init costs twice as much."""

    seq: int
    index: int
    event_id: str
    correlation_id: str


def _envelope(alert_id: str, version: int, kind: str, origin: SampleOrigin) -> dict[str, Any]:
    """Identity, causation and stream position every evaluator-made event carries."""
    return {
        "id": event_id_for(alert_id, version, kind),
        "aggregate_id": alert_id,
        "version": version,
        "correlation_id": origin.correlation_id,
        "causation_id": origin.event_id,
        "source_seq": origin.seq,
        "source_index": origin.index,
    }


def transition_event(
    check: CompiledRule,
    alert: Alert | None,
    transition: Transition,
    value: float,
    fingerprint_: str,
    labels: Mapping[str, str],
    origin: SampleOrigin,
) -> AlertEvent:
    """The event for a transition; ``labels`` are the alert's (the series' and the rule's
    static ones), which its annotations are rendered with."""
    if transition.kind == "fire":
        alert_id = alert_id_for(fingerprint_, origin.seq, origin.index)
        notes = check.annotate(labels, value, transition.threshold, transition.severity)
        return AlertFired(
            **_envelope(alert_id, 1, "fired", origin),
            rule=check.rule.name,
            fingerprint=fingerprint_,
            metric=check.rule.metric,
            labels=dict(labels),
            severity=transition.severity,
            value=value,
            threshold=transition.threshold,
            summary=notes.get("summary", check.rule.summary),
            annotations=notes,
        )
    if alert is None:
        raise InvalidTransition(f"{transition.kind} needs an open alert")
    version = alert.version + 1
    identity: dict[str, Any] = {
        "rule": alert.rule,
        "fingerprint": alert.fingerprint,
        "metric": alert.metric,
        "labels": dict(alert.labels),
    }
    if transition.kind == "escalate":
        return AlertEscalated(
            **_envelope(alert.alert_id, version, "escalated", origin),
            **identity,
            severity=transition.severity,
            previous_severity=alert.severity,
            value=value,
            threshold=transition.threshold,
            annotations=check.annotate(
                alert.labels, value, transition.threshold, transition.severity
            ),
        )
    return AlertResolved(
        **_envelope(alert.alert_id, version, "recovered", origin),
        **identity,
        severity=alert.severity,
        reason="recovered",
        value=value,
    )


def evaluate_sample(
    book: AlertBook,
    check: CompiledRule,
    fingerprint_: str,
    labels: Mapping[str, str],
    value: float,
    at: float,
    origin: SampleOrigin,
    limits: Thresholds | None = None,
) -> tuple[AlertEvent | None, Pending | None]:
    """What one value of a series does to it: the event to append (if any) and what then
    stays pending. ``limits`` are the series' thresholds (an override's), looked up from
    ``labels`` when not given. The caller appends the event, then ``book.record``s it and
    sets the pending state."""
    if limits is None:
        limits = check.thresholds_for(labels)
    alert = book.open.get(fingerprint_)
    transition, pending = evaluate(limits, alert, book.pending.get(fingerprint_), value, at)
    if transition is None:
        return None, pending
    return transition_event(check, alert, transition, value, fingerprint_, labels, origin), pending


def absence_fired(
    check: CompiledRule,
    fingerprint_: str,
    labels: Mapping[str, str],
    silent_s: float,
    origin: SampleOrigin,
) -> AlertFired:
    """'No data': the series' last sample was ``silent_s`` ago. The alert's id derives from
    that last sample, so the same silence can only ever open one alert, restarts included."""
    severity: Severity = check.rule.severity or "critical"
    limit = check.rule.absent_for or 0.0
    alert_id = alert_id_for(fingerprint_, origin.seq, origin.index)
    notes = check.annotate(labels, silent_s, limit, severity)
    return AlertFired(
        **_envelope(alert_id, 1, "fired", origin),
        rule=check.rule.name,
        fingerprint=fingerprint_,
        metric=check.rule.metric,
        labels=dict(labels),
        severity=severity,
        value=silent_s,
        threshold=limit,
        summary=notes.get("summary", check.rule.summary),
        reason="absent",
        annotations=notes,
    )


def absence_recovered(alert: Alert, value: float, origin: SampleOrigin) -> AlertResolved:
    """Data came back: the sample at ``origin`` resolves the 'no data' alert."""
    version = alert.version + 1
    return AlertResolved(
        **_envelope(alert.alert_id, version, "recovered", origin),
        rule=alert.rule,
        fingerprint=alert.fingerprint,
        metric=alert.metric,
        labels=dict(alert.labels),
        severity=alert.severity,
        reason="recovered",
        value=value,
    )


# --- commands --------------------------------------------------------------------------


def acknowledge(alert: Alert | None, command: AcknowledgeAlert) -> list[AlertEvent]:
    """Acknowledging twice is a no-op; a resolved alert cannot be acknowledged."""
    if alert is None:
        raise NotFound(f"no alert {command.alert_id}")
    if alert.status == "resolved":
        raise InvalidTransition(f"alert {alert.alert_id} is resolved")
    if alert.status == "acknowledged":
        return []
    version = alert.version + 1
    return [
        AlertAcknowledged(
            id=event_id_for(alert.alert_id, version, "acknowledged"),
            aggregate_id=alert.alert_id,
            version=version,
            rule=alert.rule,
            fingerprint=alert.fingerprint,
            metric=alert.metric,
            labels=dict(alert.labels),
            severity=alert.severity,
            by=command.by,
            comment=command.comment,
        )
    ]


def resolve(alert: Alert | None, command: ResolveAlert) -> list[AlertEvent]:
    if alert is None:
        raise NotFound(f"no alert {command.alert_id}")
    if alert.status == "resolved":
        raise InvalidTransition(f"alert {alert.alert_id} is already resolved")
    version = alert.version + 1
    return [
        AlertResolved(
            id=event_id_for(alert.alert_id, version, "resolved-manually"),
            aggregate_id=alert.alert_id,
            version=version,
            rule=alert.rule,
            fingerprint=alert.fingerprint,
            metric=alert.metric,
            labels=dict(alert.labels),
            severity=alert.severity,
            by=command.by,
            reason="manual",
        )
    ]


# --- the evaluator's memory ------------------------------------------------------------


@dataclass
class AlertBook:
    """Open alerts by series, what is pending, and how far the sample stream has been applied.

    ``position`` is the (batch seq, sample index) of the latest sample that caused a
    transition, and ``at_position`` the series it changed there: on a redelivered batch
    everything up to that point is already on the log and is skipped, so a re-evaluation
    can never open a second episode for a sample that was already counted.
    """

    open: dict[str, Alert] = field(default_factory=dict)  # by fingerprint
    fingerprints: dict[str, str] = field(default_factory=dict)  # open alert id -> fingerprint
    last_seq: dict[str, int] = field(default_factory=dict)  # open alert id -> subject seq
    pending: dict[str, Pending] = field(default_factory=dict)  # by fingerprint
    position: tuple[int, int] = (0, 0)
    at_position: set[str] = field(default_factory=set)
    # per series, its last change: the sample behind it, or the time it was resolved by hand
    changed_by_sample: dict[str, tuple[int, int]] = field(default_factory=dict)
    changed_by_command_at: dict[str, float] = field(default_factory=dict)

    def get(self, alert_id: str) -> Alert | None:
        fp = self.fingerprints.get(alert_id)
        return None if fp is None else self.open.get(fp)

    def already_applied(self, seq: int, index: int, fingerprint_: str) -> bool:
        here = (seq, index)
        return here < self.position or (here == self.position and fingerprint_ in self.at_position)

    def record(self, event: AlertEvent, seq: int) -> Alert:
        """Apply an event that is on the log at subject sequence ``seq``."""
        alert = apply(self.get(event.aggregate_id), event)
        self._keep(alert, seq)
        self._advance(event)
        return alert

    def replace(self, alert_id: str, history: Iterable[tuple[AlertEvent, int]]) -> Alert | None:
        """Swap in an alert as reloaded from the log after a Conflict."""
        self._forget(alert_id)
        alert: Alert | None = None
        last = 0
        for event, seq in history:
            alert = apply(alert, event)
            last = seq
            self._advance(event)
        if alert is not None:
            self._keep(alert, last)
        return alert

    def set_pending(self, fingerprint_: str, pending: Pending | None) -> None:
        if pending is None:
            self.pending.pop(fingerprint_, None)
        else:
            self.pending[fingerprint_] = pending

    def _keep(self, alert: Alert, seq: int) -> None:
        if not alert.is_open:
            self._forget(alert.alert_id)
            self.pending.pop(alert.fingerprint, None)
            return
        previous = self.open.get(alert.fingerprint)
        if previous is not None and previous.alert_id != alert.alert_id:
            self._forget(previous.alert_id)
        self.open[alert.fingerprint] = alert
        self.fingerprints[alert.alert_id] = alert.fingerprint
        self.last_seq[alert.alert_id] = seq

    def _forget(self, alert_id: str) -> None:
        fp = self.fingerprints.pop(alert_id, None)
        self.last_seq.pop(alert_id, None)
        if fp is not None and (held := self.open.get(fp)) is not None and held.alert_id == alert_id:
            del self.open[fp]

    def changed_since(self, fingerprint_: str, seq: int, index: int, received_at: float) -> bool:
        """Whether the series changed after the sample at (``seq``, ``index``) arrived, so
        that sample says nothing about what is pending now."""
        return (seq, index) <= self.changed_by_sample.get(fingerprint_, (0, 0)) or (
            received_at <= self.changed_by_command_at.get(fingerprint_, 0.0)
        )

    def _advance(self, event: AlertEvent) -> None:
        if event.source_seq == 0:
            if isinstance(event, AlertResolved):  # a resolve by hand ends what was pending
                self.changed_by_command_at[event.fingerprint] = event.time.timestamp()
            return
        here = (event.source_seq, event.source_index)
        self.changed_by_sample[event.fingerprint] = here
        if here > self.position:
            self.position = here
            self.at_position = {event.fingerprint}
        elif here == self.position:
            self.at_position.add(event.fingerprint)
