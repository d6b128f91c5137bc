"""From samples to the values rules judge: per rule and series, what it learnt once
(whether the series matches, its fingerprint, thresholds and alert labels) and what it
keeps (a window, the counters of a ratio, when it was last seen).

Synchronous and free of I/O: ``RuleEngine.read`` turns one sample into the readings to
judge, and the evaluator (handlers.py) judges them and appends what changes. Restoring
after a restart feeds the same ``read`` with the samples of the past, so windows,
ratios and last-seen times come back as they were.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.alerts.absence import AbsenceClock, LastSeen
from services.alerts.domain import SampleOrigin, fingerprint
from services.alerts.rulecompile import CompiledRule, Thresholds
from services.alerts.windows import Counter, Window, window_for
from shared.ruleconfig import RuleConfig

LabelKey = tuple[tuple[str, str], ...]
MAX_KNOWN_SERIES = 200_000  # per rule; past it, what was learnt is learnt again
SWEEP_EVERY = 4096


def label_key(labels: Mapping[str, str]) -> LabelKey:
    return tuple(sorted(labels.items()))


class Series:
    """One series of one rule: its alert identity and thresholds, and its window if any."""

    __slots__ = ("fingerprint", "labels", "limits", "window")

    def __init__(
        self,
        fingerprint_: str,
        labels: dict[str, str],
        limits: Thresholds | None,
        window: Window | None = None,
    ):
        self.fingerprint = fingerprint_
        self.labels = labels  # the alert's: the series' (or the group's) + static labels
        self.limits = limits
        self.window = window


Reading = tuple[CompiledRule, Series, float | None]  # value None: nothing to judge


class Watcher:
    """One rule reading samples of one metric."""

    def __init__(self, check: CompiledRule):
        self.check = check
        self.known: dict[LabelKey, Series | None] = {}

    def read(
        self,
        labels: Mapping[str, str],
        key: LabelKey,
        value: float,
        at: float,
        arrived: float,
        origin: SampleOrigin,
    ) -> Reading | None:
        """The reading of one sample (None: not this rule's series, or nothing to judge).
        ``at`` places it in windows, ``arrived`` is when its batch came."""
        series = self.known.get(key, _UNKNOWN)
        if series is _UNKNOWN:
            series = self._learn(labels, key)
        if series is None:
            return None
        return self.check, series, self._value(series, value, at)

    def _learn(self, labels: Mapping[str, str], key: LabelKey) -> Series | None:
        if len(self.known) >= MAX_KNOWN_SERIES:
            self.known.clear()
        series = self._series(labels, key) if self.check.matches(labels) else None
        self.known[key] = series
        return series

    def _series(self, labels: Mapping[str, str], key: LabelKey) -> Series:
        check = self.check
        return Series(
            fingerprint(check.name, labels),
            check.alert_labels(labels),
            check.thresholds_for(labels),
        )

    def _value(self, series: Series, value: float, at: float) -> float | None:
        return value

    def carry(self, old: Watcher) -> None:
        """Take over what ``old`` (the same rule before a change) kept, where it still holds."""


_UNKNOWN = Series("", {}, None)  # a sentinel: the series was never looked at


class WindowWatcher(Watcher):
    """A window function over each series: the window is kept, the value is its result."""

    def __init__(self, check: CompiledRule):
        super().__init__(check)
        self.function = check.rule.function or "last"
        self.span = check.rule.window or 0.0
        self._reads = 0

    def _series(self, labels: Mapping[str, str], key: LabelKey) -> Series:
        series = super()._series(labels, key)
        series.window = window_for(self.function, self.span)
        return series

    def _value(self, series: Series, value: float, at: float) -> float | None:
        window = series.window
        assert window is not None
        window.add(at, value)
        self._reads += 1
        if self._reads > SWEEP_EVERY and self._reads > len(self.known):
            self._sweep(at)
        return window.value()

    def _sweep(self, now: float) -> None:
        """Forget series silent for a whole window (their windows are empty): amortised
        over the reads, so series that come and go do not pile up."""
        self._reads = 0
        cutoff = now - self.span
        self.known = {
            key: series
            for key, series in self.known.items()
            if series is None or (series.window is not None and series.window.newest > cutoff)
        }

    def carry(self, old: Watcher) -> None:
        same = old.check.rule
        rule = self.check.rule
        if not isinstance(old, WindowWatcher) or (same.function, same.window) != (
            rule.function,
            rule.window,
        ):
            return
        for key, series in old.known.items():
            if series is not None and series.window is not None:
                labels = dict(key)
                if self.check.matches(labels):
                    fresh = self._series(labels, key)
                    fresh.window = series.window
                    self.known[key] = fresh


class RatioGroup:
    """The series of both counters that share the join labels: their windows, summed."""

    __slots__ = ("at", "denominator", "numerator", "series")

    def __init__(self, series: Series):
        self.series = series
        self.numerator: dict[LabelKey, Counter] = {}
        self.denominator: dict[LabelKey, Counter] = {}
        self.at = float("-inf")  # the newest point of either side

    def ratio(self, now: float, scale: float) -> float | None:
        above = _increase(self.numerator, now)
        below = _increase(self.denominator, now)
        if above is None or below is None or below <= 0:
            return None
        return above / below * scale


def _increase(counters: dict[LabelKey, Counter], now: float) -> float | None:
    total: float | None = None
    for counter in counters.values():
        counter.evict(now)
        grown = counter.increase()
        if grown is not None:
            total = grown if total is None else total + grown
    return total


Touched = dict["RatioGroup", "RatioWatcher"]


class RatioWatcher(Watcher):
    """One side (numerator or denominator) of a ratio rule; both sides share ``groups``."""

    def __init__(
        self,
        check: CompiledRule,
        numerator: bool,
        groups: dict[LabelKey, RatioGroup],
        touched: Touched,
    ):
        super().__init__(check)
        self.touched = touched
        ratio = check.rule.ratio
        assert ratio is not None
        self.ratio = ratio
        self.numerator = numerator
        self.groups = groups
        self.members: dict[LabelKey, tuple[RatioGroup, Counter] | None] = {}

    def read(
        self,
        labels: Mapping[str, str],
        key: LabelKey,
        value: float,
        at: float,
        arrived: float,
        origin: SampleOrigin,
    ) -> Reading | None:
        """Counted, not judged: a ratio is judged once per batch (``RuleEngine.settle``),
        when both counters of the batch are in, never between the two."""
        group = self.touch(labels, key, value, at)
        if group is not None:
            self.touched[group] = self
        return None

    def touch(
        self, labels: Mapping[str, str], key: LabelKey, value: float, at: float
    ) -> RatioGroup | None:
        member = self.members.get(key, _NO_MEMBER)
        if member is _NO_MEMBER:
            member = self._join(labels, key)
        if member is None:
            return None
        group, counter = member
        counter.add(at, value)
        group.at = max(group.at, at)
        return group

    def _join(self, labels: Mapping[str, str], key: LabelKey) -> tuple[RatioGroup, Counter] | None:
        if len(self.members) >= MAX_KNOWN_SERIES:
            self.members.clear()
        if len(self.groups) >= MAX_KNOWN_SERIES:
            self.groups.clear()
        member: tuple[RatioGroup, Counter] | None = None
        if self.check.matches(labels):
            on = self.ratio.on
            group_key = key if on is None else tuple(sorted((k, labels.get(k, "")) for k in on))
            group = self.groups.get(group_key)
            if group is None:
                group = RatioGroup(self._series(dict(group_key), group_key))
                self.groups[group_key] = group
            side = group.numerator if self.numerator else group.denominator
            counter = side.get(key)
            if counter is None:
                counter = side[key] = Counter(self.ratio.over)
            member = (group, counter)
        self.members[key] = member
        return member


_NO_MEMBER = (RatioGroup(_UNKNOWN), Counter(1.0))


class AbsenceWatcher(Watcher):
    """Marks each series (or each ``absent_by`` part of it) seen; its value is the sample."""

    def __init__(self, check: CompiledRule, clock: AbsenceClock):
        super().__init__(check)
        self.clock = clock
        self.by = check.rule.absent_by

    def read(
        self,
        labels: Mapping[str, str],
        key: LabelKey,
        value: float,
        at: float,
        arrived: float,
        origin: SampleOrigin,
    ) -> Reading | None:
        reading = super().read(labels, key, value, at, arrived, origin)
        if reading is not None:
            series = reading[1]
            self.clock.observe(
                LastSeen(self.check.name, series.fingerprint, series.labels, arrived, origin)
            )
        return reading

    def _series(self, labels: Mapping[str, str], key: LabelKey) -> Series:
        if self.by is not None:
            labels = {name: labels[name] for name in self.by if name in labels}
        check = self.check
        return Series(fingerprint(check.name, labels), check.alert_labels(labels), None)


@dataclass(frozen=True)
class Compiled:
    """A rule set worked out: watchers by the sample name they read."""

    by_name: dict[str, CompiledRule]
    watchers: dict[str, tuple[Watcher, ...]]
    absent_for: dict[str, float]


def _carry_key(rule: RuleConfig) -> tuple[object, ...]:
    """What a rule's kept state depends on: change any of it and the state starts afresh."""
    return (
        rule.metric,
        tuple(sorted(rule.labels.items())),
        tuple(rule.matchers),
        rule.function,
        rule.window,
        rule.ratio,
        tuple(rule.absent_by) if rule.absent_by is not None else None,
    )


class RuleEngine:
    """Every rule in use and what it keeps per series."""

    def __init__(self, rules: Iterable[RuleConfig]):
        self.absence = AbsenceClock()
        # ratio groups counted in the batch being read, to judge at its end
        self.touched: Touched = {}
        self.rules: dict[str, CompiledRule] = {}
        self.watchers: dict[str, tuple[Watcher, ...]] = {}
        self.use(list(rules))

    def use(self, rules: list[RuleConfig]) -> None:
        """Judge by ``rules`` from now on; what a rule kept survives a change that leaves
        its series and window alone (thresholds, annotations, for)."""
        old_rules = self.rules
        old_watchers = {
            (watcher.check.name, metric): watcher
            for metric, watchers in self.watchers.items()
            for watcher in watchers
        }
        compiled = [CompiledRule.of(rule) for rule in rules]
        watchers: dict[str, list[Watcher]] = {}
        kept_absence: set[str] = set()
        for check in compiled:
            before = old_rules.get(check.name)
            carried = before is not None and _carry_key(before.rule) == _carry_key(check.rule)
            made = self._watchers(check)
            for metric, watcher in made:
                old = old_watchers.get((check.name, metric))
                if carried and old is not None:
                    watcher.carry(old)
                watchers.setdefault(metric, []).append(watcher)
            if check.kind == "ratio" and carried:
                _carry_groups(made, old_watchers.get((check.name, check.metrics[0])))
            if check.kind == "absence" and carried:
                kept_absence.add(check.name)
        self.rules = {check.name: check for check in compiled}
        self.watchers = {metric: tuple(found) for metric, found in watchers.items()}
        self.absence.use(
            {c.name: c.rule.absent_for for c in compiled if c.rule.absent_for is not None},
            kept_absence,
        )

    def _watchers(self, check: CompiledRule) -> list[tuple[str, Watcher]]:
        if check.kind == "logs":
            return []  # counted from LOGS (logrules.py), not from samples
        if check.kind == "ratio":
            groups: dict[LabelKey, RatioGroup] = {}
            numerator, denominator = check.metrics
            return [
                (numerator, RatioWatcher(check, True, groups, self.touched)),
                (denominator, RatioWatcher(check, False, groups, self.touched)),
            ]
        if check.kind == "window":
            return [(check.metric, WindowWatcher(check))]
        if check.kind == "absence":
            return [(check.metric, AbsenceWatcher(check, self.absence))]
        return [(check.metric, Watcher(check))]

    @property
    def longest_lookback_s(self) -> float:
        """How far back samples still matter (log rules restore from LOGS instead)."""
        return max(
            (c.rule.lookback_s for c in self.rules.values() if c.kind != "logs"), default=0.0
        )

    def read(
        self,
        name: str,
        labels: Mapping[str, str],
        value: float,
        stamped: float | None,
        arrived: float,
        origin: SampleOrigin,
    ) -> list[Reading]:
        """The readings one sample gives, each rule that watches it in config order.

        ``arrived`` is when its batch arrived (``for`` and absence count from it);
        windows place the sample at its own timestamp, never later than its arrival.
        """
        watchers = self.watchers.get(name)
        if watchers is None:
            return []
        at = stamped if stamped is not None and stamped < arrived else arrived
        key = label_key(labels)
        readings = []
        for watcher in watchers:
            reading = watcher.read(labels, key, value, at, arrived, origin)
            if reading is not None:
                readings.append(reading)
        return readings

    def settle(self) -> list[Reading]:
        """The ratios of the groups the batch counted: call once the whole batch has been
        read. Their transitions name the end of the batch (index = its number of
        samples), after every sample of it, so transitions stay in stream order."""
        settled: list[Reading] = [
            (watcher.check, group.series, group.ratio(group.at, watcher.ratio.scale))
            for group, watcher in self.touched.items()
        ]
        self.touched.clear()
        return settled


def _carry_groups(made: list[tuple[str, Watcher]], old: Watcher | None) -> None:
    """A ratio rule's groups (both sides' counters) carried over a change, with the new
    thresholds and static labels."""
    if not isinstance(old, RatioWatcher):
        return
    watcher = made[0][1]
    assert isinstance(watcher, RatioWatcher)
    for group_key, group in old.groups.items():
        group.series = watcher._series(dict(group_key), group_key)
        watcher.groups[group_key] = group  # shared with the other side's watcher
