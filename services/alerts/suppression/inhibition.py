"""Inhibition: while an open alert matching a rule's source fires, alerts matching its
target with the same values of its ``equal`` labels page nobody.

Indexed both ways by (rule, values of ``equal``), as Alertmanager does, so an alert
opening or closing touches only the alerts it can inhibit, never every open alert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shared.events import SuppressionRef
from shared.matchers import Matcher, matches_all, parse_matcher
from shared.suppressionconfig import InhibitRuleConfig

Key = tuple[str, ...]


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def of(cls, config: InhibitRuleConfig) -> InhibitRule:
        return cls(
            source=tuple(parse_matcher(m) for m in config.source_matchers),
            target=tuple(parse_matcher(m) for m in config.target_matchers),
            equal=tuple(config.equal),
        )

    def key(self, labels: Mapping[str, str]) -> Key:
        """A label missing counts as empty, so it is equal to another missing one."""
        return tuple(labels.get(name, "") for name in self.equal)


@dataclass
class _Placed:
    labels: dict[str, str]
    rule: str  # the alert's rule, shown on what it inhibits
    sources: list[tuple[int, Key]] = field(default_factory=list)
    targets: list[tuple[int, Key]] = field(default_factory=list)


class Inhibitions:
    """The open alerts placed as sources and targets of each inhibition rule."""

    def __init__(self, rules: Sequence[InhibitRuleConfig] = ()):
        self.rules = [InhibitRule.of(r) for r in rules]
        # per rule: equal-values -> {source alert id: its rule name}
        self._sources: list[dict[Key, dict[str, str]]] = [{} for _ in self.rules]
        # per rule: equal-values -> target alert ids
        self._targets: list[dict[Key, set[str]]] = [{} for _ in self.rules]
        self._placed: dict[str, _Placed] = {}

    def place(self, alert_id: str, rule: str, labels: dict[str, str]) -> set[str]:
        """Put an open alert (or its new labels, after an escalation) in the index;
        returns the other alerts whose inhibition may have changed."""
        touched = self.remove(alert_id)
        placed = _Placed(dict(labels), rule)
        for index, inhibit in enumerate(self.rules):
            key = inhibit.key(labels)
            if matches_all(inhibit.source, placed.labels):
                self._sources[index].setdefault(key, {})[alert_id] = rule
                placed.sources.append((index, key))
                touched |= self._targets[index].get(key, set())
            if matches_all(inhibit.target, placed.labels):
                self._targets[index].setdefault(key, set()).add(alert_id)
                placed.targets.append((index, key))
        self._placed[alert_id] = placed
        touched.discard(alert_id)
        return touched

    def remove(self, alert_id: str) -> set[str]:
        """Take a closed alert out; returns the alerts it may have inhibited."""
        placed = self._placed.pop(alert_id, None)
        if placed is None:
            return set()
        touched: set[str] = set()
        for index, key in placed.sources:
            held = self._sources[index].get(key)
            if held is not None:
                held.pop(alert_id, None)
                if not held:
                    del self._sources[index][key]
            touched |= self._targets[index].get(key, set())
        for index, key in placed.targets:
            ids = self._targets[index].get(key)
            if ids is not None:
                ids.discard(alert_id)
                if not ids:
                    del self._targets[index][key]
        touched.discard(alert_id)
        return touched

    def refs(self, labels: dict[str, str], alert_id: str) -> list[SuppressionRef]:
        """What inhibits an alert with ``labels`` now; an alert never inhibits itself."""
        found: dict[str, SuppressionRef] = {}
        for index, inhibit in enumerate(self.rules):
            if not matches_all(inhibit.target, labels):
                continue
            sources = self._sources[index].get(inhibit.key(labels))
            if not sources:
                continue
            for source_id, rule in sources.items():
                if source_id != alert_id and source_id not in found:
                    found[source_id] = SuppressionRef(kind="inhibition", id=source_id, detail=rule)
        return [found[key] for key in sorted(found)]

    def snapshot(self) -> dict[str, object]:
        """Everything indexed, comparable between a live and a rebuilt suppressor."""
        return {
            "sources": [
                {key: dict(ids) for key, ids in per_rule.items()} for per_rule in self._sources
            ],
            "targets": [
                {key: sorted(ids) for key, ids in per_rule.items()} for per_rule in self._targets
            ],
        }
