"""Flapping: a series that fires and resolves more than N times within a window.

State changes only from alert events, in log order, at the events' own times, so the
same log always gives the same state: live, after a restart, or in a test. Whether
the series has settled is decided by time (no change for a whole window) but takes
effect only when ``AlertSettled`` is on the log.
"""

from __future__ import annotations

from collections import deque
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


def is_change(event: AlertEvent) -> bool:
    """Fire and resolve are the state changes counted; an escalation is not one."""
    return isinstance(event, AlertFired | AlertResolved)


@dataclass
class Series:
    changes: deque[tuple[float, str]] = field(default_factory=deque)  # (time, event id)
    last_change: float = 0.0
    latest_alert: str = ""  # the series' newest episode, where its notices go
    flapping: bool = False
    announced: bool = False  # AlertFlapping is on the log for this flapping run


class FlapDetector:
    def __init__(self, config: FlappingConfig):
        self.config = config
        self.window = config.window_s
        self.series: dict[str, Series] = {}
        self.flapping: set[str] = set()
        self._recent: deque[tuple[float, str]] = deque()  # every counted change, for pruning

    def ref(self, fingerprint: str) -> SuppressionRef:
        """The same for the whole run, so it never reads as a change of reasons."""
        return SuppressionRef(
            kind="flapping",
            id=fingerprint,
            detail=f"more than {self.config.changes} changes within {format_duration(self.window)}",
        )

    def is_flapping(self, fingerprint: str) -> bool:
        return fingerprint in self.flapping

    def would_flap(self, event: AlertEvent) -> bool:
        """Whether the series flaps once ``event`` is on the log: it does already, or this
        change is one too many."""
        if not self.config.enabled:
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
                1 for t, ident in series.changes if t > at - self.window and ident != event.id
            )
        return counted > self.config.changes

    def observe(self, event: AlertEvent) -> bool:
        """Apply one logged event; True when the series has just begun flapping."""
        fp = event.fingerprint
        if isinstance(event, AlertFlapping):
            self.mark_announced(fp)
            return False
        if isinstance(event, AlertSettled):
            self.mark_settled(fp)
            return False
        if not self.config.enabled or not is_change(event):
            return False
        series = self.series.setdefault(fp, Series())
        if isinstance(event, AlertFired) or not series.latest_alert:
            series.latest_alert = event.aggregate_id
        if any(ident == event.id for _, ident in series.changes):
            return False  # the same event again
        at = event.time.timestamp()
        series.changes.append((at, event.id))
        series.last_change = max(series.last_change, at)
        self._recent.append((at, fp))
        while series.changes and series.changes[0][0] <= at - self.window:
            series.changes.popleft()
        self._prune(at)
        if not series.flapping and len(series.changes) > self.config.changes:
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
        """Forget quiet series: nothing changed within a window and not flapping."""
        while self._recent and self._recent[0][0] <= now - self.window:
            _, fp = self._recent.popleft()
            series = self.series.get(fp)
            if (
                series is not None
                and not series.flapping
                and series.last_change <= now - self.window
            ):
                del self.series[fp]

    def to_announce(self) -> list[str]:
        return sorted(fp for fp in self.flapping if not self.series[fp].announced)

    def settled(self, now: datetime) -> list[str]:
        """Flapping series that have not changed for a whole window."""
        at = now.timestamp()
        return sorted(fp for fp in self.flapping if self.series[fp].last_change + self.window <= at)

    def next_deadline(self) -> datetime | None:
        """When the earliest flapping series settles unless it changes before."""
        if not self.flapping:
            return None
        at = min(self.series[fp].last_change for fp in self.flapping) + self.window
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
