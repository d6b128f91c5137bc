"""The alert lifecycle without I/O: given events, when a sample or a command, then events."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from services.alerts import domain
from services.alerts.domain import AlertBook, CompiledRule, SampleOrigin
from shared.commands import AcknowledgeAlert, ResolveAlert
from shared.config import RuleConfig
from shared.errors import InvalidTransition, NotFound
from shared.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertEvent,
    AlertFired,
    AlertResolved,
)

HOST = {"host": "web-1", "env": "prod"}


def cpu_rule(**overrides: object) -> RuleConfig:
    fields: dict[str, object] = {"name": "HighCPU", "metric": "cpu", "warning": 70, "critical": 90}
    fields.update(overrides)
    return RuleConfig.model_validate(fields)


@dataclass
class Series:
    """One label set fed sample by sample through the pure evaluator, events kept in order."""

    rule: RuleConfig
    labels: dict[str, str] = field(default_factory=lambda: dict(HOST))
    book: AlertBook = field(default_factory=AlertBook)
    events: list[AlertEvent] = field(default_factory=list)
    batch: int = 0

    @property
    def fingerprint(self) -> str:
        return domain.fingerprint(self.rule.name, self.labels)

    def feed(self, *values: float, at: float | None = None) -> list[AlertEvent]:
        """One batch of samples; ``at`` defaults to one second per batch."""
        self.batch += 1
        when = float(self.batch) if at is None else at
        check = CompiledRule.of(self.rule)
        new: list[AlertEvent] = []
        for index, value in enumerate(values):
            origin = SampleOrigin(self.batch, index, f"batch-{self.batch}", "flow")
            event, pending = domain.evaluate_sample(
                self.book, check, self.fingerprint, self.labels, value, when, origin
            )
            if event is not None:
                self.book.record(event, seq=len(self.events) + 1)
                new.append(event)
                self.events.append(event)
            self.book.set_pending(self.fingerprint, pending)
        return new

    def command(self, events: list[AlertEvent]) -> list[AlertEvent]:
        for event in events:
            self.book.record(event, seq=len(self.events) + 1)
            self.events.append(event)
        return events

    @property
    def alert(self) -> domain.Alert | None:
        return self.book.open.get(self.fingerprint)


def kinds(events: list[AlertEvent]) -> list[tuple[str, str]]:
    return [(e.type, e.severity) for e in events]


def test_fires_warning_at_the_threshold_not_below() -> None:
    cpu = Series(cpu_rule())
    assert cpu.feed(69.9) == []
    (fired,) = cpu.feed(70)
    assert isinstance(fired, AlertFired)
    assert (fired.severity, fired.value, fired.threshold) == ("warning", 70.0, 70.0)
    assert (fired.rule, fired.metric, fired.labels) == ("HighCPU", "cpu", HOST)
    assert fired.fingerprint == cpu.fingerprint
    assert (fired.version, fired.causation_id, fired.correlation_id) == (1, "batch-2", "flow")
    assert (fired.source_seq, fired.source_index) == (2, 0)


def test_fires_straight_at_critical() -> None:
    cpu = Series(cpu_rule())
    (fired,) = cpu.feed(95)
    assert isinstance(fired, AlertFired)
    assert (fired.severity, fired.threshold) == ("critical", 90.0)


def test_escalates_once_and_never_goes_back_down() -> None:
    cpu = Series(cpu_rule())
    cpu.feed(75)
    (escalated,) = cpu.feed(91)
    assert isinstance(escalated, AlertEscalated)
    assert (escalated.previous_severity, escalated.severity) == ("warning", "critical")
    assert escalated.aggregate_id == cpu.events[0].aggregate_id
    assert escalated.version == 2
    assert cpu.feed(75, 92, 71, 89) == []
    assert cpu.alert is not None and cpu.alert.severity == "critical"


def test_resolves_only_past_the_hysteresis() -> None:
    cpu = Series(cpu_rule(hysteresis=3.5))
    cpu.feed(80)
    assert cpu.feed(69, 67, 66.5) == []
    (resolved,) = cpu.feed(66.4)
    assert isinstance(resolved, AlertResolved)
    assert (resolved.reason, resolved.value, resolved.by) == ("recovered", 66.4, "")
    assert resolved.severity == "warning"
    assert cpu.alert is None


def test_default_hysteresis_is_five_percent_of_the_warning_threshold() -> None:
    cpu = Series(cpu_rule())  # 70 → resolves below 66.5
    cpu.feed(71)
    assert cpu.feed(66.5) == []
    assert kinds(cpu.feed(66.49)) == [("AlertResolved", "warning")]


def test_value_on_or_around_the_threshold_does_not_flap() -> None:
    cpu = Series(cpu_rule())
    cpu.feed(70, 70, 70, 69.9, 70.1, 69.9, 70.0, 68, 70.5)
    assert kinds(cpu.events) == [("AlertFired", "warning")]


def test_zero_threshold_gets_a_small_hysteresis_floor() -> None:
    errors = Series(RuleConfig(name="AnyErrors", metric="errors", critical=0, direction="below"))
    errors.feed(0)
    assert errors.feed(0, 0.0, 1e-7) == []
    assert kinds(errors.feed(0.01)) == [("AlertResolved", "critical")]


def test_direction_below() -> None:
    disk = Series(
        RuleConfig(name="LowDisk", metric="free", direction="below", warning=20, critical=10)
    )
    assert disk.feed(25, 20.5) == []
    assert kinds(disk.feed(20)) == [("AlertFired", "warning")]
    assert kinds(disk.feed(9.5)) == [("AlertEscalated", "critical")]
    assert disk.feed(15, 20, 21) == []  # hysteresis 1: back above 21 to resolve
    assert kinds(disk.feed(21.5)) == [("AlertResolved", "critical")]


def test_critical_only_rule_resolves_past_the_critical_threshold() -> None:
    down = Series(RuleConfig(name="Down", metric="down", critical=1, hysteresis=0.5))
    assert kinds(down.feed(1)) == [("AlertFired", "critical")]
    assert down.feed(0.5) == []
    assert kinds(down.feed(0)) == [("AlertResolved", "critical")]


def test_for_waits_until_the_level_held_long_enough() -> None:
    cpu = Series(cpu_rule(**{"for": "60s"}))
    assert cpu.feed(80, at=1000) == []
    assert cpu.feed(80, at=1059) == []
    (fired,) = cpu.feed(80, at=1060)
    assert (fired.type, fired.severity) == ("AlertFired", "warning")


def test_for_restarts_when_the_level_breaks() -> None:
    cpu = Series(cpu_rule(**{"for": 60}))
    cpu.feed(80, at=0)
    cpu.feed(60, at=30)  # dip below warning: the clock restarts
    cpu.feed(80, at=40)
    assert cpu.feed(80, at=90) == []
    assert kinds(cpu.feed(80, at=100)) == [("AlertFired", "warning")]


def test_for_applies_to_escalation_and_to_firing_straight_at_critical() -> None:
    cpu = Series(cpu_rule(**{"for": 10}))
    cpu.feed(95, at=0)
    assert cpu.feed(95, at=9) == []
    assert kinds(cpu.feed(95, at=10)) == [("AlertFired", "critical")]

    mem = Series(cpu_rule(**{"for": 10}))
    mem.feed(80, at=0)
    assert kinds(mem.feed(95, at=10)) == [("AlertFired", "warning")]  # critical held 0 s
    assert mem.feed(95, at=15) == []
    assert mem.feed(80, at=18) == []  # critical broken: its clock restarts
    assert mem.feed(95, at=20) == []
    assert kinds(mem.feed(95, at=30)) == [("AlertEscalated", "critical")]


def test_label_filter_is_an_exact_match_on_the_listed_labels() -> None:
    check = CompiledRule.of(cpu_rule(labels={"env": "prod"}))
    assert check.matches({"env": "prod", "host": "a"})
    assert not check.matches({"env": "dev", "host": "a"})
    assert not check.matches({"host": "a"})
    assert CompiledRule.of(cpu_rule()).matches({})


def test_each_label_set_is_its_own_alert() -> None:
    web = Series(cpu_rule(), labels={"host": "web"})
    db = Series(cpu_rule(), labels={"host": "db"}, book=web.book)
    web.feed(80)
    db.feed(80)
    assert web.fingerprint != db.fingerprint
    assert web.events[0].aggregate_id != db.events[0].aggregate_id
    assert len(web.book.open) == 2


def test_fingerprint_ignores_label_order_and_alert_id_is_deterministic() -> None:
    assert domain.fingerprint("R", {"a": "1", "b": "2"}) == domain.fingerprint(
        "R", {"b": "2", "a": "1"}
    )
    assert domain.fingerprint("R", {"a": "1"}) != domain.fingerprint("S", {"a": "1"})
    assert domain.alert_id_for("fp", 7, 3) == domain.alert_id_for("fp", 7, 3)
    assert domain.alert_id_for("fp", 7, 3) != domain.alert_id_for("fp", 7, 4)


def test_acknowledge_once_then_no_op() -> None:
    cpu = Series(cpu_rule())
    cpu.feed(80)
    assert cpu.alert is not None
    alert_id = cpu.alert.alert_id
    (acked,) = cpu.command(
        domain.acknowledge(
            cpu.alert, AcknowledgeAlert(alert_id=alert_id, by="ann", comment="on it")
        )
    )
    assert isinstance(acked, AlertAcknowledged)
    assert (acked.by, acked.comment, acked.version, acked.severity) == (
        "ann",
        "on it",
        2,
        "warning",
    )
    assert domain.acknowledge(cpu.alert, AcknowledgeAlert(alert_id=alert_id, by="bob")) == []
    assert cpu.alert.status == "acknowledged"
    # an acknowledged alert still escalates and still recovers
    assert kinds(cpu.feed(95)) == [("AlertEscalated", "critical")]
    assert kinds(cpu.feed(10)) == [("AlertResolved", "critical")]


def test_acknowledging_a_resolved_or_unknown_alert_is_refused() -> None:
    cpu = Series(cpu_rule())
    cpu.feed(80)
    cpu.feed(10)
    resolved = domain.fold(cpu.events)
    assert resolved is not None and resolved.status == "resolved"
    with pytest.raises(InvalidTransition):
        domain.acknowledge(resolved, AcknowledgeAlert(alert_id=resolved.alert_id))
    with pytest.raises(NotFound):
        domain.acknowledge(None, AcknowledgeAlert(alert_id="nope"))


def test_manual_resolve_then_a_still_high_sample_opens_a_new_episode() -> None:
    cpu = Series(cpu_rule())
    cpu.feed(80)
    first = cpu.alert
    assert first is not None
    (resolved,) = cpu.command(
        domain.resolve(first, ResolveAlert(alert_id=first.alert_id, by="ann"))
    )
    assert isinstance(resolved, AlertResolved)
    assert (resolved.reason, resolved.by, resolved.version) == ("manual", "ann", 2)
    assert cpu.alert is None
    after = domain.fold([e for e in cpu.events if e.aggregate_id == first.alert_id])
    with pytest.raises(InvalidTransition):
        domain.resolve(after, ResolveAlert(alert_id=first.alert_id))
    (again,) = cpu.feed(80)
    assert isinstance(again, AlertFired)
    assert again.aggregate_id != first.alert_id


def test_state_is_rebuilt_by_applying_events() -> None:
    cpu = Series(cpu_rule())
    cpu.feed(80)
    cpu.feed(95)
    assert cpu.alert is not None
    cpu.command(
        domain.acknowledge(cpu.alert, AcknowledgeAlert(alert_id=cpu.alert.alert_id, by="ann"))
    )
    rebuilt = AlertBook()
    for seq, event in enumerate(cpu.events, start=1):
        rebuilt.record(event, seq)
    alert = rebuilt.open[cpu.fingerprint]
    assert (alert.severity, alert.status, alert.version, alert.acknowledged_by) == (
        "critical",
        "acknowledged",
        3,
        "ann",
    )
    assert rebuilt.last_seq[alert.alert_id] == 3
    assert rebuilt.position == (2, 0)


def test_book_recognises_samples_already_on_the_log() -> None:
    cpu = Series(cpu_rule())
    cpu.feed(50, 80, 68)  # fired at (1, 1); 68 is inside the hysteresis band
    fp = cpu.fingerprint
    assert cpu.book.position == (1, 1)
    assert cpu.book.already_applied(1, 0, fp)
    assert cpu.book.already_applied(1, 1, fp)
    assert not cpu.book.already_applied(1, 1, "another series")
    assert not cpu.book.already_applied(1, 2, fp)
