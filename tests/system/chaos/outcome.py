"""What a chaos run produced: the counts that must add up, and the figures."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tests.system.chaos.counting import Counts
from tests.system.chaos.load import LoadGenerator
from tests.system.chaos.pager import Page, PageRecorder
from tests.system.chaos.scenario import RULE, SUPERVISOR
from tests.system.chaos.system import Kill

# Delivery is at least once (docs/notifications.md): a notifier that dies after the
# receiver answered but before its ledger row is written sends that page again, with the
# same X-Vigil-Delivery. Such a repeat's first copy arrived shortly before a kill that
# took the notifier down (or just after: the kill and the arrival race in this process's
# event loop); any other repeat is a defect.
NOTIFIER_DEATHS = frozenset({"notifier", SUPERVISOR})
AT_LEAST_ONCE_WINDOW_S = 5.0


@dataclass
class Outcome:
    """``problems()`` lists every count that does not add up; ``figures()`` says it all."""

    elapsed_s: float
    settle_s: float
    batches: int
    unsettled: list[str]  # keys never accepted
    rejected: list[str]
    retries: Counter[str]  # answers and errors before a 202, by status or error
    samples_accepted: int
    samples_stored: int | None
    stored_total: int | None
    series_sent: int  # critical series whose batch was accepted
    alerts: int
    incidents: int
    series_paged: int
    incidents_paged: int
    mismatches: list[str]  # series missing, doubled or unknown in alerts, incidents, pages
    page_repeats: dict[str, int]  # event type -> pages beyond the first per (event, id)
    unexplained_repeats: list[str]  # repeats outside the at-least-once window
    outcomes: int | None  # notification outcomes recorded on the NOTIFICATIONS stream
    deliveries: int  # distinct X-Vigil-Delivery ids paged
    bad_signatures: int
    other_pages: Counter[str]  # Vigil's own alerts paged, by rule
    other_alerts: Counter[str]
    kills: list[Kill]
    latencies_ms: list[float]
    anomalies: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    worst_lag: dict[str, int] = field(default_factory=dict)  # durable -> most seen behind

    def problems(self) -> list[str]:
        found = []
        if self.unsettled:
            found.append(f"{len(self.unsettled)} batches never accepted: {self.unsettled[:5]}")
        if self.rejected:
            found.append(f"{len(self.rejected)} batches rejected: {self.rejected[:5]}")
        if self.samples_stored != self.samples_accepted:
            found.append(
                f"samples accepted {self.samples_accepted} != stored {self.samples_stored}"
            )
        found.extend(self.mismatches)
        if self.unexplained_repeats:
            found.append(
                f"{len(self.unexplained_repeats)} repeated pages outside the at-least-once "
                f"window of a notifier death: {self.unexplained_repeats[:5]}"
            )
        if self.outcomes != self.deliveries:
            found.append(
                f"{self.outcomes} notification outcomes recorded for {self.deliveries} deliveries"
            )
        if self.bad_signatures:
            found.append(f"{self.bad_signatures} pages with a bad signature")
        found.extend(self.leftovers)
        for kill in self.kills:
            if kill.recovery_s is None:
                found.append(f"no page after killing {kill.target} ({kill.note or 'no sample'})")
        return found

    def figures(self) -> str:
        lat = sorted(self.latencies_ms)
        killed = ", ".join(f"{t} x{n}" for t, n in Counter(k.target for k in self.kills).items())
        lines = [
            f"chaos run: {self.elapsed_s:.0f} s of load, {len(self.kills)} kills ({killed}); "
            f"settled {self.settle_s:.0f} s after the load stopped",
            f"batches {self.batches:,}; answers/errors before their 202: "
            f"{dict(self.retries) or 'none'}; never accepted {len(self.unsettled)}, "
            f"rejected {len(self.rejected)}",
            f"samples accepted {self.samples_accepted:,}, stored {self.samples_stored:,} "
            f"(all stored samples, Vigil's own included: {self.stored_total})"
            if self.samples_stored is not None
            else f"samples accepted {self.samples_accepted:,}, stored: unknown",
            f"critical series {self.series_sent:,}, alerts {self.alerts:,}, incidents "
            f"{self.incidents:,}, paged: AlertFired {self.series_paged:,}, IncidentOpened "
            f"{self.incidents_paged:,}",
            f"repeated pages {self.page_repeats or 0} (outside the at-least-once window: "
            f"{len(self.unexplained_repeats)}); outcomes recorded {self.outcomes} for "
            f"{self.deliveries:,} deliveries; bad signatures {self.bad_signatures}",
        ]
        if self.other_alerts or self.other_pages:
            lines.append(
                f"Vigil's own alerts: {dict(self.other_alerts)}; paged: {dict(self.other_pages)}"
            )
        if lat:
            lines.append(
                f"sample -> page (AlertFired) ms over the run: p50 {percentile(lat, 50):.0f}, "
                f"p90 {percentile(lat, 90):.0f}, p99 {percentile(lat, 99):.0f}, "
                f"max {lat[-1]:.0f} ({len(lat):,} series)"
            )
        if self.worst_lag:
            lines.append(f"largest consumer lag seen (messages): {self.worst_lag}")
        lines.append("recovery (kill -> first page of a sample sent after it):")
        for target in dict.fromkeys(k.target for k in self.kills):
            cells = []
            for kill in (k for k in self.kills if k.target == target):
                cell = "no page" if kill.recovery_s is None else f"{kill.recovery_s:.1f}s"
                if kill.restart_s is not None:
                    cell += f" (up again {kill.restart_s:.1f}s)"
                if kill.note:
                    cell += f" [{kill.note}]"
                cells.append(cell)
            lines.append(f"  {target:<11} " + ", ".join(cells))
        lines.extend(f"anomaly: {anomaly}" for anomaly in self.anomalies)
        return "\n".join(lines)


def percentile(ordered: list[float], p: float) -> float:
    index = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def compare(what: str, expected: set[str], found: Iterable[str]) -> list[str]:
    """Each expected series exactly once, and nothing else."""
    counted = Counter(found)
    problems = []
    missing = expected - set(counted)
    doubled = {s: n for s, n in counted.items() if n > 1}
    unknown = set(counted) - expected
    if missing:
        problems.append(f"{what}: {len(missing)} series missing, e.g. {sorted(missing)[:5]}")
    if doubled:
        problems.append(f"{what}: {len(doubled)} series more than once, e.g. {doubled}")
    if unknown:
        problems.append(f"{what}: {len(unknown)} series never sent, e.g. {sorted(unknown)[:5]}")
    return problems


def repeats(pages: list[Page], kills: list[Kill]) -> tuple[dict[str, int], list[str]]:
    """Pages beyond the first per (event, id), by event type, and those not explained
    by the at-least-once window (same delivery id, first copy just before a notifier death).
    """
    deaths = [k.at for k in kills if k.target in NOTIFIER_DEATHS and k.at]
    first: dict[tuple[str, str], Page] = {}
    counted: Counter[str] = Counter()
    unexplained = []
    for page in pages:
        original = first.setdefault((page.event, page.subject_id), page)
        if original is page:
            continue
        counted[page.event] += 1
        in_window = any(-1.0 <= at - original.arrived <= AT_LEAST_ONCE_WINDOW_S for at in deaths)
        if page.delivery != original.delivery or not in_window:
            unexplained.append(
                f"{page.event} {page.subject_id}: first at {original.arrived:.2f}, "
                f"again at {page.arrived:.2f} (delivery {original.delivery} / {page.delivery})"
            )
    return dict(counted), unexplained


def tally(
    load: LoadGenerator,
    pager: PageRecorder,
    kills: list[Kill],
    counts: Counts,
    elapsed_s: float,
    settle_s: float,
) -> Outcome:
    batches = list(load.batches.values())
    accepted = [b for b in batches if b.accepted_at is not None]
    critical = [b for b in accepted if b.series is not None]
    sent = {b.series for b in critical if b.series is not None}
    fired = [p for p in pager.of("AlertFired") if p.rule == RULE]
    mine = {p.alert_id for p in fired}
    opened = [p for p in pager.of("IncidentOpened") if p.alert_id in mine]
    first_page: dict[str, float] = {}
    for page in fired:
        if page.series is not None:
            first_page.setdefault(page.series, page.arrived)
    for kill in kills:
        later = [
            first_page[b.series]
            for b in critical
            if b.series in first_page and b.first_sent >= kill.at
        ]
        if kill.at and later:
            kill.recovery_s = min(later) - kill.at
    retries: Counter[str] = Counter()
    for batch in batches:
        for status, n in batch.statuses.items():
            if status != "202":
                retries[status] += n
    page_repeats, unexplained = repeats(pager.pages, kills)
    fired_once = {p.alert_id: p.series or "" for p in fired}
    mismatches = [
        *compare("alerts", sent, counts.alert_series.elements()),
        *compare("incidents", sent, counts.incident_series.elements()),
        *compare("AlertFired pages", sent, fired_once.values()),
        *compare(
            "IncidentOpened pages",
            sent,
            {p.subject_id: fired_once.get(p.alert_id, "") for p in opened}.values(),
        ),
    ]
    return Outcome(
        elapsed_s=elapsed_s,
        settle_s=settle_s,
        batches=len(batches),
        unsettled=[b.key for b in batches if b.accepted_at is None and not b.rejected],
        rejected=[f"{b.key}: {b.rejected}" for b in batches if b.rejected],
        retries=retries,
        samples_accepted=sum(b.samples for b in accepted),
        samples_stored=counts.samples,
        stored_total=counts.stored_total,
        series_sent=len(sent),
        alerts=sum(counts.alert_series.values()),
        incidents=sum(counts.incident_series.values()),
        series_paged=len(set(fired_once.values()) & sent),
        incidents_paged=len({p.subject_id for p in opened}),
        mismatches=mismatches,
        page_repeats=page_repeats,
        unexplained_repeats=unexplained,
        outcomes=counts.outcomes,
        deliveries=len({p.delivery for p in pager.pages}),
        bad_signatures=pager.bad_signatures,
        other_pages=Counter(p.rule for p in pager.of("AlertFired") if p.rule != RULE),
        other_alerts=counts.other_alerts,
        kills=kills,
        latencies_ms=[
            (first_page[b.series] - b.first_sent) * 1000 for b in critical if b.series in first_page
        ],
    )


def dump(
    path: Path,
    started: float,
    load: LoadGenerator,
    pager: PageRecorder,
    kills: list[Kill],
    lags: list[tuple[float, dict[str, int]]],
) -> None:
    """Every batch, page and kill, times in seconds after the load started: the evidence."""

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - started, 4)

    path.write_bytes(
        orjson.dumps(
            {
                "batches": [
                    [b.key, b.series, rel(b.first_sent), rel(b.accepted_at), dict(b.statuses)]
                    for b in load.batches.values()
                ],
                "pages": [
                    [
                        p.event,
                        p.subject_id,
                        p.alert_id,
                        p.rule,
                        p.series,
                        p.delivery,
                        rel(p.arrived),
                        round(p.lag_s, 4),
                    ]
                    for p in pager.pages
                ],
                "kills": [[k.target, k.pid, rel(k.at), k.restart_s, k.note] for k in kills],
                "lags": lags,
            }
        )
    )
