"""When each watched series is due to be called absent: a heap of deadlines, no polling.

A sample of a series an absence rule watches moves that series' last-seen time; its
deadline is last seen + ``absent_for``. The heap holds at most one entry per series: a
series seen again keeps its entry, and when that entry comes due it is pushed back to
the real deadline instead of firing. So a sample costs O(1) (a dict write) and the
timer wakes only for deadlines, never to look over every series.

Pure and clock-free: the caller says what time it is, which is how tests and
``vigil rules test`` drive it.
"""

from __future__ import annotations

import heapq
from typing import NamedTuple

from services.alerts.domain import SampleOrigin

SeriesKey = tuple[str, str]  # (rule name, fingerprint)


class LastSeen(NamedTuple):
    """A series' newest sample as an absence rule saw it (a named tuple: one per sample)."""

    rule: str
    fingerprint: str
    labels: dict[str, str]  # the alert's labels: the series' (or its absent_by part) + static
    at: float  # arrival of the batch
    origin: SampleOrigin


class AbsenceClock:
    def __init__(self) -> None:
        self.limits: dict[str, float] = {}  # rule name -> absent_for
        self.seen: dict[SeriesKey, LastSeen] = {}
        self._heap: list[tuple[float, str, str]] = []
        self._armed: set[SeriesKey] = set()
        self.sooner = False  # a deadline earlier than all before was armed: wake the timer

    def use(self, limits: dict[str, float], kept: set[str]) -> None:
        """The absence rules now in use; series of rules not in ``kept`` are forgotten."""
        self.limits = dict(limits)
        self.seen = {key: seen for key, seen in self.seen.items() if key[0] in kept}
        # a changed absent_for moves every deadline of its rule: arm them all afresh
        self._heap = [
            (s.at + self.limits[s.rule], s.rule, s.fingerprint)
            for s in self.seen.values()
            if s.rule in self.limits
        ]
        heapq.heapify(self._heap)
        self._armed = {(rule, fp) for _, rule, fp in self._heap}

    def observe(self, seen: LastSeen) -> bool:
        """Record a sample; True when it armed a deadline earlier than any before it (the
        timer must wake sooner)."""
        key = (seen.rule, seen.fingerprint)
        previous = self.seen.get(key)
        if previous is not None and previous.at > seen.at:
            return False  # an older sample (a replay) does not move the series back
        self.seen[key] = seen
        if key in self._armed:
            return False
        deadline = seen.at + self.limits.get(seen.rule, 0.0)
        earliest = not self._heap or deadline < self._heap[0][0]
        heapq.heappush(self._heap, (deadline, seen.rule, seen.fingerprint))
        self._armed.add(key)
        self.sooner = self.sooner or earliest
        return earliest

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[LastSeen]:
        """The series whose deadline has passed at ``now``; each is forgotten until it is
        seen again (its alert, if any, is on the book by then)."""
        fired: list[LastSeen] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, rule, fp = heapq.heappop(heap)
            key = (rule, fp)
            seen = self.seen.get(key)
            limit = self.limits.get(rule)
            if seen is None or limit is None:
                self._armed.discard(key)
                self.seen.pop(key, None)
                continue
            deadline = seen.at + limit
            if deadline > now:  # seen again since this entry was armed
                heapq.heappush(heap, (deadline, rule, fp))
                continue
            self._armed.discard(key)
            del self.seen[key]
            fired.append(seen)
        return fired

    def __len__(self) -> int:
        return len(self.seen)
