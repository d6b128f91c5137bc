"""The SLOs of the configuration as the metrics service answers for them: figures over a
window, the monthly report's figures, and the burn rates the burn-rate alerts judge."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from services.metrics.slo.arithmetic import (
    Timeline,
    burn_alerts,
    burn_rate,
    observed_percentile,
    violations,
    window_figures,
    without,
)
from services.metrics.slo.periods import month_bounds, window_bounds
from shared.commands import parse_command
from shared.errors import InvalidInput, NotFound
from shared.maintenanceconfig import MaintenanceWindowConfig, WindowSchedule
from shared.matchers import matches_all
from shared.slocommands import MAX_QUERY_SPAN_S, MAX_VIOLATION_STEPS, SlaReportQuery, SloQuery
from shared.sloconfig import (
    BURN_ALERTS,
    BURN_WINDOWS_S,
    Events,
    SloConfig,
    check_window,
    events_of,
)

LONGEST_BURN_MS = max(BURN_WINDOWS_S.values()) * 1000
# violation steps tried in turn: the finest that keeps a window within the bound
STEPS_S = (60, 300, 900, 3600, 21600, 86400)
REPORT_STEP_S = 300


class TimelineReader(Protocol):
    async def timeline(self, events: Events, start_ms: int, end_ms: int) -> Timeline: ...


class SloBook:
    """The configured SLOs and the maintenance windows they may leave out."""

    def __init__(
        self,
        slos: Sequence[SloConfig],
        reader: TimelineReader,
        maintenance: Sequence[MaintenanceWindowConfig] = (),
        clock: Callable[[], float] = time.time,
    ):
        self.slos = {slo.name: slo for slo in slos}
        self.reader = reader
        self.set_maintenance(maintenance)
        self.clock = clock

    def set_maintenance(self, windows: Sequence[MaintenanceWindowConfig]) -> None:
        self.maintenance = [(w.compiled_matchers(), WindowSchedule(w)) for w in windows]

    @property
    def excludes_maintenance(self) -> bool:
        return any(slo.exclude_maintenance for slo in self.slos.values())

    def excluded(self, slo: SloConfig, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """The maintenance stretches an SLO leaves out of ``[start, end)``."""
        if not slo.exclude_maintenance or end_ms <= start_ms:
            return []
        labels = slo.labels()
        begin = datetime.fromtimestamp(start_ms / 1000, UTC)
        finish = datetime.fromtimestamp(end_ms / 1000, UTC)
        found: list[tuple[int, int]] = []
        for matchers, schedule in self.maintenance:
            if not matches_all(matchers, labels):
                continue
            occurrences, _ = schedule.occurrences(begin, finish)
            for occurrence in occurrences:
                low = max(start_ms, int(occurrence.start.timestamp() * 1000))
                high = min(end_ms, int(occurrence.end.timestamp() * 1000))
                if high > low:
                    found.append((low, high))
        return sorted(found)

    async def timeline(
        self, slo: SloConfig, start_ms: int, end_ms: int
    ) -> tuple[Timeline, list[tuple[int, int]]]:
        read = await self.reader.timeline(events_of(slo), start_ms, end_ms)
        excluded = self.excluded(slo, start_ms, end_ms)
        return without(read, excluded), excluded

    def select(self, query: SloQuery) -> list[SloConfig]:
        if query.slo is not None and query.slo not in self.slos:
            raise NotFound(f"slo: no SLO named {query.slo!r}", field="slo")
        return [
            slo
            for slo in self.slos.values()
            if (query.slo is None or slo.name == query.slo)
            and (query.service is None or slo.service == query.service)
            and (query.check is None or slo.check == query.check)
        ]

    # --- answers -------------------------------------------------------------------

    async def query(self, body: dict[str, Any]) -> dict[str, Any]:
        query = parse_command(SloQuery, body)
        now = self.clock()
        if query.window is not None:
            try:
                check_window(query.window)
            except ValueError as exc:
                raise InvalidInput(f"window: {exc}", field="window") from None
        if query.window is not None and (query.start is not None or query.end is not None):
            raise InvalidInput("window: give a window or start and end, not both", field="window")
        found = []
        for slo in self.select(query):
            start, end = self._span(slo, query, now)
            found.append(await self.figures(slo, start, end, query.step))
        return {"slos": found, "time": now}

    def _span(self, slo: SloConfig, query: SloQuery, now: float) -> tuple[float, float]:
        if query.start is not None or query.end is not None:
            end = query.end if query.end is not None else now
            if query.start is None:
                raise InvalidInput("start: give start with end (or a window)", field="start")
            start = query.start
            if end <= start:
                raise InvalidInput("end: must be after start", field="end")
            if end - start > MAX_QUERY_SPAN_S:
                raise InvalidInput(
                    f"end: at most {MAX_QUERY_SPAN_S / 86400:g} days after start", field="end"
                )
            return start, end
        return window_bounds(query.window or slo.window, now)

    async def figures(
        self, slo: SloConfig, start: float, end: float, step: float | None = None
    ) -> dict[str, Any]:
        start_ms, end_ms = int(start * 1000), int(end * 1000)
        step_s = pick_step(end - start, step)
        timeline, excluded = await self.timeline(
            slo, min(start_ms, end_ms - LONGEST_BURN_MS), end_ms
        )
        result = window_figures(timeline, start_ms, end_ms, slo.objective)
        rates = {
            name: burn_rate(timeline, end_ms, seconds * 1000, slo.objective)
            for name, seconds in BURN_WINDOWS_S.items()
        }
        answer: dict[str, Any] = {
            "slo": slo.name,
            "description": slo.description,
            "service": slo.service,
            "check": slo.check,
            "sli_kind": slo.sli.kind,
            "window": slo.window,
            "start": start,
            "end": end,
            **result.public(),
            "burn_rates": rates,
            "burn_alerts": burn_alerts(rates, BURN_ALERTS),
            "step_s": step_s,
            "violations": [
                v.public()
                for v in violations(timeline, start_ms, end_ms, int(step_s * 1000), slo.objective)
            ],
            "maintenance_excluded": [
                {"start": low / 1000, "end": high / 1000, "duration_s": (high - low) / 1000}
                for low, high in excluded
                if high > start_ms and low < end_ms
            ],
        }
        percent = None if result.sli is None else 100.0 * result.sli
        answer["availability"] = percent if slo.sli.kind == "availability" else None
        answer["performance"] = percent if slo.sli.kind == "latency" else None
        if slo.sli.latency is not None:
            answer["threshold"] = slo.sli.latency.threshold
            answer["observed_percentile"] = observed_percentile(
                timeline, start_ms, end_ms, slo.objective
            )
        return answer

    async def report(self, body: dict[str, Any]) -> dict[str, Any]:
        """One SLO over one calendar month: the month's figures, each day's, and the
        violations in 5-minute steps."""
        query = parse_command(SlaReportQuery, body)
        slo = self.slos.get(query.slo)
        if slo is None:
            raise NotFound(f"slo: no SLO named {query.slo!r}", field="slo")
        try:
            start, end = month_bounds(query.month)
        except ValueError as exc:
            raise InvalidInput(f"month: {exc}", field="month") from None
        now = self.clock()
        if start >= now:
            raise InvalidInput(f"month: {query.month} has not begun", field="month")
        until = min(end, now)
        whole = await self.figures(slo, start, until, REPORT_STEP_S)
        timeline, _ = await self.timeline(slo, int(start * 1000), int(until * 1000))
        days = []
        day = start
        while day < until:
            low, high = int(day * 1000), int(min(day + 86400, until) * 1000)
            figures = window_figures(timeline, low, high, slo.objective)
            days.append(
                {"date": datetime.fromtimestamp(day, UTC).date().isoformat(), **figures.public()}
            )
            day += 86400
        return {"month": query.month, "complete": end <= now, **whole, "days": days}

    async def burn(self, now: float) -> dict[str, dict[str, Any]]:
        """Per SLO with alerts: burn rates over the alert windows and which urgencies fire."""
        end_ms = int(now * 1000)
        found: dict[str, dict[str, Any]] = {}
        for slo in self.slos.values():
            if not slo.alerts:
                continue
            start, _ = window_bounds(slo.window, now)
            start_ms = int(start * 1000)
            timeline, _ = await self.timeline(slo, min(start_ms, end_ms - LONGEST_BURN_MS), end_ms)
            rates = {
                name: burn_rate(timeline, end_ms, seconds * 1000, slo.objective)
                for name, seconds in BURN_WINDOWS_S.items()
            }
            remaining = window_figures(timeline, start_ms, end_ms, slo.objective)
            found[slo.name] = {
                "rates": rates,
                "alerts": burn_alerts(rates, BURN_ALERTS),
                "budget_remaining": remaining.budget_remaining,
            }
        return found


def pick_step(span_s: float, step: float | None) -> float:
    if step is not None:
        if span_s / step > MAX_VIOLATION_STEPS:
            raise InvalidInput(
                f"step: {step:g} s makes more than {MAX_VIOLATION_STEPS} steps of the window; "
                f"take {span_s / MAX_VIOLATION_STEPS:.0f} s or more",
                field="step",
            )
        return step
    for candidate in STEPS_S:
        if span_s / candidate <= MAX_VIOLATION_STEPS / 2:
            return float(candidate)
    return float(STEPS_S[-1])
