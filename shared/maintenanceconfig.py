"""Maintenance windows: when matching alerts page nobody, ahead of time.

A window is one-off (``start`` and ``end``, ISO 8601 with an offset) or recurring (a cron
expression read in ``timezone``, each occurrence lasting ``duration``). A recurring
window follows local time across daylight-saving changes: ``0 2 * * 0`` in Europe/Berlin
starts at 02:00 on the clock of the wall, in winter (01:00 UTC) and summer (00:00 UTC)
alike; on the night the clocks skip 02:00 it starts when they show 03:00. Owned by the
alerts service (file and API alike); the gateway shows the occurrences.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from croniter import CroniterError, croniter
from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator

from shared.configtypes import Duration, Name, Strict
from shared.matchers import EVERYTHING, Matcher, MatcherError, matches_everything, parse_matcher
from shared.pagingconfig import zone

MAX_WINDOW_DURATION_S = 7 * 86400
MAX_MATCHERS = 64
# a recurring window's occurrences are found in local time, then placed on the UTC line;
# near a daylight-saving change the search looks this far around it
DST_NEARBY = timedelta(days=2)
TICK = timedelta(seconds=1)  # below a cron expression's minute
# bounds on the work one question about a schedule may take (a cron firing every minute)
MAX_STEPS = 20_000
# occurrences that overlap are one stretch; its end is followed this many occurrences far
# (each step a whole duration on): beyond, the window counts as ending there, and is asked
# again then
MERGED_STEPS = 24
FORMS = (
    "give start and end for a one-off window, or cron, duration and timezone for a recurring one"
)


def _aware(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"{value!r} is not a time like 2026-05-01T22:00:00+02:00 (ISO 8601 with an offset)"
            ) from None
    if isinstance(value, datetime) and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(
            "needs a UTC offset, like 2026-05-01T22:00:00+02:00 or 2026-05-01T20:00:00Z"
        )
    return value


AwareDateTime = Annotated[datetime, BeforeValidator(_aware)]


def _matcher_text(value: str) -> str:
    try:
        parse_matcher(value)
    except MatcherError as exc:
        raise ValueError(exc.message) from None
    return value.strip()


MatcherText = Annotated[str, Field(min_length=1, max_length=1200), AfterValidator(_matcher_text)]


def check_cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5 or not croniter.is_valid(value):
        raise ValueError(
            f"{value!r} is not a cron expression of five fields (minute hour day-of-month "
            'month day-of-week), like "0 2 * * 0" for Sundays at 02:00'
        )
    try:
        croniter(value, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterError:
        raise ValueError(f"{value!r} names a day that never comes") from None
    return " ".join(fields)


class MaintenanceWindowConfig(Strict):
    """Matching alerts page nobody inside the window; what still fires when it ends pages
    then, once."""

    name: Name
    matchers: list[MatcherText] = Field(
        min_length=1,
        max_length=MAX_MATCHERS,
        description="Alertmanager matchers, all of which an alert must match: host=web-1, "
        'severity=~"warn.*", team!=db',
    )
    comment: str = Field(default="", max_length=2000, description="Why, for people")
    start: AwareDateTime | None = Field(default=None, description="A one-off window's start")
    end: AwareDateTime | None = Field(
        default=None, validate_default=True, description="A one-off window's end"
    )
    cron: str | None = Field(
        default=None,
        max_length=200,
        validate_default=True,
        description='A recurring window: when each occurrence starts, e.g. "0 2 * * 0"',
    )
    duration: Duration | None = Field(
        default=None,
        gt=0,
        le=MAX_WINDOW_DURATION_S,
        validate_default=True,
        description="How long each occurrence of a recurring window lasts, e.g. 2h",
    )
    timezone: str | None = Field(
        default=None,
        max_length=100,
        validate_default=True,
        description="The IANA time zone the cron expression is read in, e.g. Europe/Berlin",
    )

    @field_validator("matchers")
    @classmethod
    def _narrow(cls, value: list[str]) -> list[str]:
        if matches_everything(parse_matcher(m) for m in value):
            raise ValueError(EVERYTHING)
        return value

    @field_validator("end")
    @classmethod
    def _end(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if "start" not in info.data:
            return value  # start itself was refused
        start = info.data["start"]
        if start is not None and value is None:
            raise ValueError("a one-off window needs an end")
        if start is None and value is not None:
            raise ValueError("a one-off window needs a start too")
        if start is not None and value is not None and value <= start:
            raise ValueError("must be after start")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None, info: ValidationInfo) -> str | None:
        one_off = info.data.get("start") is not None or info.data.get("end") is not None
        if value is None:
            if not one_off and "start" in info.data and "end" in info.data:
                raise ValueError(FORMS)
            return None
        if one_off:
            raise ValueError("a window is one-off (start, end) or recurring (cron), not both")
        return check_cron(value)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: float | None, info: ValidationInfo) -> float | None:
        if "cron" not in info.data:
            return value
        if info.data["cron"] is not None and value is None:
            raise ValueError("a recurring window needs a duration, like 2h")
        if info.data["cron"] is None and value is not None:
            raise ValueError("only a recurring window (cron) has a duration")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "cron" not in info.data:
            return value
        if info.data["cron"] is not None and value is None:
            raise ValueError(
                "a recurring window needs a time zone: an IANA name like Europe/Berlin, or UTC"
            )
        if info.data["cron"] is None and value is not None:
            raise ValueError("only a recurring window (cron) has a time zone")
        if value is not None:
            zone(value)
        return value

    def compiled_matchers(self) -> tuple[Matcher, ...]:
        return tuple(parse_matcher(m) for m in self.matchers)

    @property
    def recurring(self) -> bool:
        return self.cron is not None


@dataclass(frozen=True)
class Occurrence:
    """One stretch of time inside the window, in UTC: ``start`` <= t < ``end``."""

    start: datetime
    end: datetime


class WindowSchedule:
    """When one window is in force. Every answer is bounded (``MAX_STEPS`` cron steps)."""

    def __init__(self, window: MaintenanceWindowConfig):
        self.window = window
        if window.cron is not None:
            self.zone = zone(window.timezone or "UTC")
            self.duration = timedelta(seconds=window.duration or 0)
        else:
            self.zone = zone("UTC")
            assert window.start is not None and window.end is not None
            self.duration = window.end - window.start

    # --- local time and the UTC line -------------------------------------------------

    def _local(self, at: datetime) -> datetime:
        return at.astimezone(self.zone).replace(tzinfo=None)

    def _utc(self, naive: datetime) -> datetime:
        # in a gap (the clocks skip 02:00) the offset before it applies: 02:00 is 03:00
        return naive.replace(tzinfo=self.zone).astimezone(UTC)

    def _starts_from(self, naive: datetime) -> croniter:
        assert self.window.cron is not None
        return croniter(self.window.cron, naive)

    def _margin(self, at: datetime) -> timedelta:
        """How far local time and the UTC line may disagree near ``at``: the size of a
        daylight-saving change within two days, else nothing."""
        offsets = [
            (at + days).astimezone(self.zone).utcoffset() or timedelta(0)
            for days in (-DST_NEARBY, timedelta(0), DST_NEARBY)
        ]
        return max(offsets) - min(offsets)

    # --- questions ---------------------------------------------------------------

    def starts(self, start: datetime, end: datetime, limit: int = MAX_STEPS) -> list[datetime]:
        """Occurrence starts in [start, end), UTC, sorted; at most ``limit``."""
        if self.window.cron is None:
            first = self.window.start
            assert first is not None
            return [first.astimezone(UTC)] if start <= first < end else []
        margin = self._margin(start)
        steps = self._starts_from(self._local(start) - margin - TICK)
        last = self._local(end) + self._margin(end)
        found: set[datetime] = set()
        for _ in range(MAX_STEPS):
            try:
                naive = steps.get_next(datetime)
            except CroniterError:
                break
            if naive > last:
                break
            begin = self._utc(naive)
            if start <= begin < end:
                found.add(begin)
                if len(found) >= limit:
                    # one found later may still lie earlier on the UTC line (a DST gap)
                    last = min(last, naive + self._margin(begin))
        return sorted(found)[:limit]

    def latest_start(self, at: datetime) -> datetime | None:
        """The last occurrence start at or before ``at``."""
        if self.window.cron is None:
            first = self.window.start
            assert first is not None
            return first.astimezone(UTC) if first <= at else None
        margin = self._margin(at)
        steps = self._starts_from(self._local(at) + margin + TICK)
        floor = self._local(at) - margin
        best: datetime | None = None
        for _ in range(MAX_STEPS):
            try:
                naive = steps.get_prev(datetime)
            except CroniterError:
                break
            begin = self._utc(naive)
            if begin <= at and (best is None or begin > best):
                best = begin
            if naive <= floor and best is not None:
                break
        return best

    def next_start(self, after: datetime) -> datetime | None:
        """The first occurrence start after ``after``."""
        if self.window.cron is None:
            first = self.window.start
            assert first is not None
            return first.astimezone(UTC) if first > after else None
        found = self.starts(after + timedelta(microseconds=1), after + timedelta(days=367), 1)
        return found[0] if found else None

    def covering(self, at: datetime) -> Occurrence | None:
        """The stretch in force at ``at``: the latest occurrence, lengthened by those that
        begin before it ends (a window whose occurrences overlap is in force throughout;
        ``MERGED_STEPS`` bounds how far ahead its end is followed)."""
        begin = self.latest_start(at)
        if begin is None or begin + self.duration <= at:
            return None
        end, latest = begin + self.duration, begin
        if self.window.cron is not None:
            for _ in range(MERGED_STEPS):
                following = self.latest_start(end)
                if following is None or following <= latest:
                    break
                latest, end = following, following + self.duration
        return Occurrence(begin, end)

    def occurrences(
        self, start: datetime, end: datetime, limit: int = 1000
    ) -> tuple[list[Occurrence], bool]:
        """Occurrences overlapping [start, end), and whether ``limit`` cut the list."""
        begins = self.starts(start - self.duration, end, limit + 1)
        found = [Occurrence(b, b + self.duration) for b in begins if b + self.duration > start]
        return found[:limit], len(found) > limit

    def next_change(self, now: datetime) -> datetime | None:
        """When the window next begins or ends, after ``now``."""
        current = self.covering(now)
        return current.end if current is not None else self.next_start(now)
