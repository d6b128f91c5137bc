"""Rules worked out once for the per-sample hot path: selectors with their regular
expressions compiled, thresholds per label set with hysteresis, and what the alert carries.

Compilation is pure: the evaluator recompiles whenever the rules change, and keeps what
it learnt per series (which thresholds apply, whether it matches at all) so each series
pays for its matchers once, not on every sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from services.alerts.annotations import render_annotations
from shared.events import Severity
from shared.matchers import Matcher, matches_all, parse_matcher
from shared.ruleconfig import RuleConfig

HYSTERESIS_RATIO = 0.05
HYSTERESIS_FLOOR = 1e-6  # a threshold of 0 still needs a gap to stop flapping

RuleKind = Literal["threshold", "window", "ratio", "absence", "logs"]


@dataclass(frozen=True, slots=True)
class Selector:
    """Exact label filters (a rule's ``labels``) and matchers, all of which must hold."""

    filters: tuple[tuple[str, str], ...] = ()
    matchers: tuple[Matcher, ...] = ()

    @classmethod
    def of(cls, labels: Mapping[str, str], matchers: list[str]) -> Selector:
        return cls(tuple(sorted(labels.items())), tuple(parse_matcher(text) for text in matchers))

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.filters:
            if labels.get(key) != value:
                return False
        return matches_all(self.matchers, labels)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The levels one series is judged by: the rule's, or an override's for its labels."""

    above: bool
    warning: float | None
    critical: float | None
    resolve_threshold: float
    hysteresis: float
    for_s: float

    @classmethod
    def of(
        cls,
        direction: str,
        warning: float | None,
        critical: float | None,
        hysteresis: float | None,
        for_s: float,
    ) -> Thresholds:
        lowest = warning if warning is not None else critical
        if lowest is None:  # RuleConfig already rejects this
            raise ValueError("a threshold rule needs a warning or a critical threshold")
        gap = (
            hysteresis
            if hysteresis is not None
            else max(HYSTERESIS_RATIO * abs(lowest), HYSTERESIS_FLOOR)
        )
        return cls(direction == "above", warning, critical, lowest, gap, for_s)

    def quiet(self, value: float) -> bool:
        """Whether the value reaches no level at all: the common case, decided at once."""
        if self.above:
            return value < self.resolve_threshold
        return value > self.resolve_threshold

    def _beyond(self, value: float, threshold: float | None) -> bool:
        if threshold is None:
            return False
        return value >= threshold if self.above else value <= threshold

    def level(self, value: float) -> Severity | None:
        """The severity the value reaches on its own, ignoring any open alert."""
        if self._beyond(value, self.critical):
            return "critical"
        if self._beyond(value, self.warning):
            return "warning"
        return None

    def recovered(self, value: float) -> bool:
        if self.above:
            return value < self.resolve_threshold - self.hysteresis
        return value > self.resolve_threshold + self.hysteresis

    def threshold(self, severity: Severity) -> float:
        value = self.critical if severity == "critical" else self.warning
        return self.resolve_threshold if value is None else value


def _kind(rule: RuleConfig) -> RuleKind:
    if rule.logs is not None:
        return "logs"
    if rule.absent_for is not None:
        return "absence"
    if rule.ratio is not None:
        return "ratio"
    if rule.function is not None and rule.function != "last":
        return "window"
    return "threshold"


@dataclass(frozen=True)
class CompiledRule:
    """A rule with its selector, thresholds and overrides worked out once."""

    rule: RuleConfig
    kind: RuleKind
    selector: Selector
    base: Thresholds | None  # None for an absence rule
    overrides: tuple[tuple[Selector, Thresholds], ...]
    set_labels: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, rule: RuleConfig) -> CompiledRule:
        kind = _kind(rule)
        base = None
        overrides: list[tuple[Selector, Thresholds]] = []
        if kind != "absence":
            base = Thresholds.of(
                rule.direction, rule.warning, rule.critical, rule.hysteresis, rule.for_s
            )
            for override in rule.overrides:
                warning = override.warning if override.warning is not None else rule.warning
                critical = override.critical if override.critical is not None else rule.critical
                hysteresis = (
                    override.hysteresis if override.hysteresis is not None else rule.hysteresis
                )
                limits = Thresholds.of(rule.direction, warning, critical, hysteresis, rule.for_s)
                overrides.append((Selector.of({}, override.matchers), limits))
        return cls(
            rule=rule,
            kind=kind,
            selector=Selector.of(rule.labels, rule.matchers),
            base=base,
            overrides=tuple(overrides),
            set_labels=tuple(sorted(rule.set_labels.items())),
        )

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def metric(self) -> str:
        return self.rule.metric

    @property
    def metrics(self) -> tuple[str, ...]:
        """The sample names this rule reads (none: a log rule reads log lines)."""
        if self.kind == "logs":
            return ()
        if self.rule.ratio is not None:
            return (self.rule.ratio.numerator, self.rule.ratio.denominator)
        return (self.rule.metric,)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.selector.matches(labels)

    def thresholds_for(self, labels: Mapping[str, str]) -> Thresholds:
        """The first override whose matchers hold, else the rule's own thresholds."""
        for selector, limits in self.overrides:
            if selector.matches(labels):
                return limits
        if self.base is None:
            raise ValueError(f"rule {self.rule.name} watches absence, not thresholds")
        return self.base

    def alert_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The series' labels with the rule's static ones (team, owner) added for routing."""
        merged = dict(labels)
        merged.update(self.set_labels)
        return merged

    def annotate(
        self, labels: Mapping[str, str], value: float, threshold: float, severity: Severity
    ) -> dict[str, str]:
        if not self.rule.annotations:
            return {}
        context = {
            "labels": dict(labels),
            # a count of log lines reads as one: "12 errors", not "12.0 errors"
            "value": int(value) if self.kind == "logs" and value.is_integer() else value,
            "threshold": threshold,
            "severity": severity,
            "rule": self.rule.name,
            "metric": self.rule.metric,
        }
        return render_annotations(self.rule.name, self.rule.annotations, context)
