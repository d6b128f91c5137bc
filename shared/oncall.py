"""Who is on call in a schedule, at an instant or over a range.

Pure functions of the schedule's configuration, so the notifier (when a step fires), the
gateway (``GET /api/monitoring/oncall``) and the dashboard all give the same answer.

Each layer hands over at its ``handoff`` time of day in the schedule's time zone: daily
and weekly shifts follow the local wall clock (a DST change makes one shift an hour
shorter or longer, the handoff stays at 09:00), custom shifts are exact durations from
the first handoff. Before its first handoff a layer has nobody. A higher layer (later in
the list) wins wherever it has someone; an override wins over every layer, and of two
overlapping overrides the later in the list wins.

A shift here is one stretch in which the same person is on call for the same reason (one
layer shift or one override): a 02:00-06:00 override cuts the layer shift around it in
two, and the part after it starts at 06:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from shared.pagingconfig import Layer, ScheduleConfig, zone

OVERRIDE = "override"
_TICK = timedelta(microseconds=1)
MAX_STEPS = 20_000  # a range with more changes is refused rather than computed


@dataclass(frozen=True)
class Shift:
    """``start``/``end`` are UTC; ``layer`` is the layer's name or ``"override"``."""

    user: str
    layer: str
    override: bool
    start: datetime
    end: datetime


@dataclass(frozen=True)
class OnCall(Shift):
    """Who is on call at an instant; ``end`` is the next change."""


# which shift of which source holds an instant: ("layer", index, shift number) or
# ("override", index, 0); with the user it names
_Source = tuple[str, int, int]


class _Rotation:
    """One layer's handoffs as UTC instants, shift ``k`` starting at ``handoff(k)``."""

    def __init__(self, layer: Layer, tz: tzinfo):
        self.layer = layer
        self.tz = tz
        self.day0 = date.fromisoformat(layer.start)
        self.clock = time.fromisoformat(layer.handoff)
        self.first = datetime.combine(self.day0, self.clock, tzinfo=tz).astimezone(UTC)
        self.days = {"daily": 1, "weekly": 7}.get(layer.rotation, 0)
        self.length = timedelta(seconds=layer.shift or 0)

    def handoff(self, k: int) -> datetime:
        if self.days:
            day = self.day0 + timedelta(days=k * self.days)
            return datetime.combine(day, self.clock, tzinfo=self.tz).astimezone(UTC)
        return self.first + k * self.length

    def index_at(self, at: datetime) -> int:
        """The shift holding ``at``; -1 before the first handoff."""
        if at < self.first:
            return -1
        if self.days:
            k = (at.astimezone(self.tz).date() - self.day0).days // self.days
        else:
            k = int((at - self.first) / self.length)
        while k > 0 and self.handoff(k) > at:
            k -= 1
        while self.handoff(k + 1) <= at:
            k += 1
        return k

    def user(self, k: int) -> str:
        return self.layer.users[k % len(self.layer.users)]

    def next_after(self, at: datetime) -> datetime:
        return self.handoff(self.index_at(at) + 1)

    def last_at_or_before(self, at: datetime) -> datetime | None:
        k = self.index_at(at)
        return None if k < 0 else self.handoff(k)


@dataclass(frozen=True)
class _Window:
    user: str
    start: datetime
    end: datetime


class _Resolved:
    """A schedule with its rotations and overrides turned into UTC instants."""

    def __init__(self, schedule: ScheduleConfig):
        tz = zone(schedule.time_zone)
        self.rotations = [_Rotation(layer, tz) for layer in schedule.layers]
        self.overrides = [
            _Window(o.user, _instant(o.start, tz), _instant(o.end, tz)) for o in schedule.overrides
        ]

    def source(self, at: datetime) -> tuple[_Source, str] | None:
        for index in range(len(self.overrides) - 1, -1, -1):
            window = self.overrides[index]
            if window.start <= at < window.end:
                return (OVERRIDE, index, 0), window.user
        for index in range(len(self.rotations) - 1, -1, -1):
            rotation = self.rotations[index]
            k = rotation.index_at(at)
            if k >= 0:
                return ("layer", index, k), rotation.user(k)
        return None

    def next_boundary(self, at: datetime) -> datetime:
        candidates = [rotation.next_after(at) for rotation in self.rotations]
        for window in self.overrides:
            candidates += [edge for edge in (window.start, window.end) if edge > at]
        return min(candidates)

    def last_boundary(self, at: datetime) -> datetime | None:
        """The latest change at or before ``at``; None when nothing started yet."""
        candidates = [
            edge for rotation in self.rotations if (edge := rotation.last_at_or_before(at))
        ]
        for window in self.overrides:
            candidates += [edge for edge in (window.start, window.end) if edge <= at]
        return max(candidates, default=None)

    def label(self, source: _Source) -> str:
        kind, index, _ = source
        return OVERRIDE if kind == OVERRIDE else self.rotations[index].layer.name


def _instant(value: str, tz: tzinfo) -> datetime:
    parsed = datetime.fromisoformat(value)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("an instant needs a time zone (a naive datetime is ambiguous)")
    return at.astimezone(UTC)


def on_call(schedule: ScheduleConfig, at: datetime) -> OnCall | None:
    """Who is on call at ``at`` (an aware datetime), or None when nobody is."""
    resolved = _Resolved(schedule)
    at = _utc(at)
    found = resolved.source(at)
    if found is None:
        return None
    source, user = found
    end = resolved.next_boundary(at)
    while _same(resolved.source(end), source):
        end = resolved.next_boundary(end)
    start = resolved.last_boundary(at)
    while start is not None and _same(resolved.source(start - _TICK), source):
        start = resolved.last_boundary(start - _TICK)
    assert start is not None  # someone is on call, so something started
    return OnCall(user, resolved.label(source), source[0] == OVERRIDE, start, end)


def _same(found: tuple[_Source, str] | None, source: _Source) -> bool:
    return found is not None and found[0] == source


def shifts(schedule: ScheduleConfig, start: datetime, end: datetime) -> list[Shift]:
    """Everyone on call between ``start`` and ``end``, in order, cut to that range."""
    resolved = _Resolved(schedule)
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise ValueError("end must be after start")
    found: list[Shift] = []
    current = resolved.source(start)
    begin = at = start
    steps = 0
    while at < end:
        steps += 1
        if steps > MAX_STEPS:
            raise ValueError(f"that range holds more than {MAX_STEPS} changes; ask for less")
        following = min(resolved.next_boundary(at), end)
        upcoming = resolved.source(following) if following < end else None
        if following < end and _key(upcoming) == _key(current):
            at = following  # a change hidden by a higher layer or an override
            continue
        if current is not None:
            source, user = current
            found.append(
                Shift(user, resolved.label(source), source[0] == OVERRIDE, begin, following)
            )
        begin = at = following
        current = upcoming
    return found


def _key(found: tuple[_Source, str] | None) -> _Source | None:
    return None if found is None else found[0]
