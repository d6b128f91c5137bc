"""Counting what the system holds once it has settled.

The API lists at most 1,000 alerts and filters neither by rule nor by label, and a run
opens thousands; Vigil also stores samples and raises alerts of its own (its watchdog
and self-monitoring). So the per-series counts are read from the gateway's SQLite file,
read-only: the same rows the API serves. The metrics store (a DuckDB file its service
holds open) counts its own samples, asked in PromQL; the API's totals are kept beside.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp

from services.gateway.alerts.tables import alerts as alerts_table
from services.gateway.incidents.tables import incidents as incidents_table
from services.gateway.ledgers.tables import subject_deliveries as outcomes_table
from tests.conftest import ADMIN_HEADERS
from tests.system.chaos.load import LoadGenerator
from tests.system.chaos.pager import PageRecorder
from tests.system.chaos.scenario import METRIC, RULE, Scenario
from tests.system.chaos.system import get_json

COUNTED_WINDOW = "1d"  # longer than any scenario runs


@dataclass
class Counts:
    samples: int | None = None  # stored samples of the scenario's metric
    alert_series: Counter[str] = field(default_factory=Counter)  # critical alerts of RULE
    incident_series: Counter[str] = field(default_factory=Counter)  # their incidents
    other_alerts: Counter[str] = field(default_factory=Counter)  # "rule severity" of the rest
    stored_total: int | None = None  # /metrics/stats: every sample, Vigil's own included
    outcomes: int | None = None  # settled outcomes on NOTIFICATIONS: one per (event, channel)


class ReadModels:
    """Read-only queries on the metrics store and the gateway's read model."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir

    def _query(self, db: str, sql: str, *params: str) -> list[tuple[object, ...]]:
        path = self.data_dir / db
        if not path.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as c:
            return list(c.execute(sql, params))

    def read(self) -> Counts:
        counts = Counts()
        # every settled outcome (delivered or failed) the gateway projected, one row per
        # NOTIFICATIONS event: a second success for one delivery would be a second row
        settled = self._query("gateway.db", f"SELECT count(*) FROM {outcomes_table.name}")
        counts.outcomes = int(str(settled[0][0])) if settled else None
        alerts, incidents = alerts_table.name, incidents_table.name
        for rule, severity, series in self._query(
            "gateway.db",
            f"SELECT rule, severity, json_extract(labels, '$.series') FROM {alerts}",
        ):
            if rule == RULE and severity == "critical":
                counts.alert_series[str(series)] += 1
            else:
                counts.other_alerts[f"{rule} {severity}"] += 1
        for (series,) in self._query(
            "gateway.db",
            f"SELECT json_extract(a.labels, '$.series') FROM {incidents} i "
            f"JOIN {alerts} a ON a.id = i.alert_id "
            "WHERE a.rule = ? AND i.severity = 'critical'",
            RULE,
        ):
            counts.incident_series[str(series)] += 1
        return counts


async def read_counts(models: ReadModels, session: aiohttp.ClientSession, url: str) -> Counts:
    counts = await asyncio.to_thread(models.read)
    # every stored sample of the scenario's metric, counted by the store itself (PromQL)
    query = quote(f"sum(count_over_time({METRIC}[{COUNTED_WINDOW}]))")
    counted = await get_json(session, url + f"/api/v1/query?query={query}")
    if counted is not None and counted["status"] == "success":
        result = counted["data"]["result"]
        counts.samples = int(float(result[0]["value"][1])) if result else 0
    stats = await get_json(session, url + "/api/monitoring/metrics/stats")
    if stats is not None:
        counts.stored_total = int(stats["stored_samples"])
    return counts


async def settle(
    load: LoadGenerator, pager: PageRecorder, models: ReadModels, url: str, scenario: Scenario
) -> tuple[Counts, float]:
    """Wait until the store, the read models and the pager have caught up (or time out),
    then a little longer for late repeats; returns the counts and the time it took."""
    started = time.monotonic()
    await load.drain(scenario.settle_timeout_s / 2)
    accepted = [b for b in load.batches.values() if b.accepted_at is not None]
    samples = sum(b.samples for b in accepted)
    series = {b.series for b in accepted if b.series is not None}
    deadline = started + scenario.settle_timeout_s
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=10), headers=ADMIN_HEADERS
    ) as session:
        while True:
            counts = await read_counts(models, session, url)
            fired = {p.series for p in pager.of("AlertFired") if p.rule == RULE}
            opened = {p.subject_id for p in pager.of("IncidentOpened")}
            if (
                (counts.samples or 0) >= samples
                and series <= set(counts.alert_series)
                and series <= set(counts.incident_series)
                and series <= fired
                and len(opened) >= len(series)
                and (counts.outcomes or 0) >= len({p.delivery for p in pager.pages})
            ) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(scenario.quiet_s)  # a late repeat would show up now
        counts = await read_counts(models, session, url)
    return counts, time.monotonic() - started
