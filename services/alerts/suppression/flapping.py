"""Flapping: a series that fires and resolves more than N times within a window.

State changes only from alert events, in log order, at the events' own times, so the
same log always gives the same state: live, after a restart, or in a test. Whether
the series has settled is decided by time (no change for a whole window) but takes
effect only when ``AlertSettled`` is on the log.

A rule may have a ``flapping`` setting of its own; its series are judged by that one,
the others by the configuration's top-level ``flapping``.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.configtypes import format_duration
from shared.events import (
    AlertEvent,
    AlertFired,
    AlertFlapping,
    AlertResolved,
    AlertSettled,
    SuppressionRef,
)
from shared.suppressionconfig import FlappingConfig


def _no_rule_settings(rule: str) -> FlappingConfig | None:
    return None


@dataclass(frozen=True)
class FlappingPolicy:
    """The top-level setting, and a rule's own where it has one (looked up by name when
    its series changes, so a rule's new setting counts from its next change)."""

    default: FlappingConfig = field(default_factory=FlappingConfig)
    of_rule: Callable[[str], FlappingConfig | None] = _no_rule_settings

    def for_rule(self, rule: str) -> FlappingConfig:
        own = self.of_rule(rule)
        return own if own is not None else self.default


def is_change(event: AlertEvent) -> bool:
    """Fire and resolve are the state changes counted; an escalation is not one."""
    return isinstance(event, AlertFired | AlertResolved)


@dataclass
class Series:
    config: FlappingConfig  # its rule's setting at its latest change
    changes: deque[tuple[float, str]] = field(default_factory=deque)  # (time, event id)
    last_change: float = 0.0
    latest_alert: str = ""  # the series' newest episode, where its notices go
    flapping: bool = False
    announced: bool = False  # AlertFlapping is on the log for this flapping run

    @property
    def window(self) -> float:
        return self.config.window_s


class FlapDetector:
    def __init__(self, config: FlappingConfig | FlappingPolicy):
        self.policy = config if isinstance(config, FlappingPolicy) else FlappingPolicy(config)
        self.series: dict[str, Series] = {}
        self.flapping: set[str] = set()
        self._expiries: list[tuple[float, str]] = []  # (a change's end of window, series)

    def _config(self, fingerprint: str, rule: str = "") -> FlappingConfig:
        series = self.series.get(fingerprint)
        return series.config if series is not None else self.policy.for_rule(rule)

    def window_of(self, fingerprint: str) -> float:
        """The window the series is judged by (its rule's, or the top-level one)."""
        return self._config(fingerprint).window_s

    def ref(self, fingerprint: str) -> SuppressionRef:
        """The same for the whole run, so it never reads as a change of reasons."""
        config = self._config(fingerprint)
        return SuppressionRef(
            kind="flapping",
            id=fingerprint,
            detail=f"more than {config.changes} changes within {format_duration(config.window_s)}",
        )

    def is_flapping(self, fingerprint: str) -> bool:
        return fingerprint in self.flapping

    def would_flap(self, event: AlertEvent) -> bool:
        """Whether the series flaps once ``event`` is on the log: it does already, or this
        change is one too many."""
        config = self.policy.for_rule(event.rule)
        if not config.enabled:
            return False
        series = self.series.get(event.fingerprint)
        if series is not None and series.flapping:
            return True
        if not is_change(event):
            return False
        at = event.time.timestamp()
        counted = 1
        if series is not None:
            counted += sum(
                1 for t, ident in series.changes if t > at - config.window_s and ident != event.id
            )
        return counted > config.changes

    def observe(self, event: AlertEvent) -> bool:
        """Apply one logged event; True when the series has just begun flapping."""
        fp = event.fingerprint
        if isinstance(event, AlertFlapping):
            self.mark_announced(fp)
            return False
        if isinstance(event, AlertSettled):
            self.mark_settled(fp)
            return False
        config = self.policy.for_rule(event.rule)
        if not config.enabled or not is_change(event):
            return False
        series = self.series.setdefault(fp, Series(config))
        series.config = config
        if isinstance(event, AlertFired) or not series.latest_alert:
            series.latest_alert = event.aggregate_id
        if any(ident == event.id for _, ident in series.changes):
            return False  # the same event again
        at = event.time.timestamp()
        series.changes.append((at, event.id))
        series.last_change = max(series.last_change, at)
        heapq.heappush(self._expiries, (at + series.window, fp))
        while series.changes and series.changes[0][0] <= at - series.window:
            series.changes.popleft()
        self._prune(at)
        if not series.flapping and len(series.changes) > config.changes:
            series.flapping = True
            series.announced = False
            self.flapping.add(fp)
            return True
        return False

    def mark_announced(self, fingerprint: str) -> None:
        series = self.series.get(fingerprint)
        if series is not None and series.flapping:
            series.announced = True

    def mark_settled(self, fingerprint: str) -> None:
        series = self.series.get(fingerprint)
        if series is not None:
            series.flapping = series.announced = False
            series.changes.clear()
        self.flapping.discard(fingerprint)

    def _prune(self, now: float) -> None:
        """Forget quiet series: nothing changed within their window and not flapping."""
        while self._expiries and self._expiries[0][0] <= now:
            _, fp = heapq.heappop(self._expiries)
            series = self.series.get(fp)
            if (
                series is not None
                and not series.flapping
                and series.last_change <= now - series.window
            ):
                del self.series[fp]

    def to_announce(self) -> list[str]:
        return sorted(fp for fp in self.flapping if not self.series[fp].announced)

    def _quiet_until(self, fingerprint: str) -> float:
        series = self.series[fingerprint]
        return series.last_change + series.window

    def settled(self, now: datetime) -> list[str]:
        """Flapping series that have not changed for a whole window."""
        at = now.timestamp()
        return sorted(fp for fp in self.flapping if self._quiet_until(fp) <= at)

    def next_deadline(self) -> datetime | None:
        """When the earliest flapping series settles unless it changes before."""
        if not self.flapping:
            return None
        at = min(self._quiet_until(fp) for fp in self.flapping)
        return datetime.fromtimestamp(at, UTC)

    def counted(self, fingerprint: str) -> int:
        series = self.series.get(fingerprint)
        return 0 if series is None else len(series.changes)

    def latest_alert(self, fingerprint: str) -> str:
        series = self.series.get(fingerprint)
        return "" if series is None else series.latest_alert

    def snapshot(self) -> dict[str, object]:
        return {
            fp: (
                [t for t, _ in s.changes],
                s.last_change,
                s.latest_alert,
                s.flapping,
                s.announced,
            )
            for fp, s in sorted(self.series.items())
            if s.changes or s.flapping
        }
