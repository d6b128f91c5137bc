"""What the suppressor asks of silences and maintenance windows, and the labels it asks with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Protocol

from shared.events import SuppressionRef


class SuppressionSource(Protocol):
    """A book of time-bound suppressions (silences, maintenance windows).

    ``active`` answers for one alert's matching labels at ``now``; ``next_change`` is the
    next moment any answer may change by time alone (a silence ends, a window opens), so
    the suppressor arms one timer instead of polling; ``on_change`` is set by the
    suppressor and awaited by the book after any change made by a command or the log.
    """

    on_change: Callable[[], Awaitable[None]]

    def active(self, labels: Mapping[str, str], now: datetime) -> list[SuppressionRef]: ...

    def next_change(self, now: datetime) -> datetime | None: ...


def matching_labels(
    labels: Mapping[str, str], rule: str, severity: str, metric: str
) -> dict[str, str]:
    """The labels silences, inhibition and windows match: the alert's labels (the
    series' and its rule's static ones, team or owner), then ``alertname``,
    ``severity`` and ``metric``."""
    found = dict(labels)
    found.update(alertname=rule, severity=severity, metric=metric)
    return found
