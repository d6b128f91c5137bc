"""Burn-rate alert timing with an injected clock: samples in a real store, the burn
evaluator at chosen times, and its samples through the real alert evaluator with the
rules the configuration generates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.alerts.replay import RuleReplay
from services.metrics.settings import MetricsSettings
from services.metrics.slo.burn import SUBJECT, BurnEvaluator
from services.metrics.slo.reader import SloReader
from services.metrics.slo.service import SloBook
from services.metrics.store import MetricsStore
from shared.config import parse_config
from shared.events import Sample, SamplesIngested

KEEP_ALL_S = 1e12
E = 1_700_000_000.0  # the errors begin after this instant (a multiple of 10 s)
STEP = 10.0
CONFIG = """
slos:
  - name: api-availability
    service: api
    objective: 99.9
    window: 30d
    sli:
      availability:
        bad: 'http_errors_total{code="500"}'
        total: http_requests_total
"""


def traffic(start: float, end: float, errors_from: float, errors_until: float) -> list[Sample]:
    """100 requests every 10 s; 2 of them errors (a 20x burn at 99.9 %) in the
    samples stamped after ``errors_from`` up to ``errors_until``."""
    samples: list[Sample] = []
    total = bad = 0.0
    at = start
    while at <= end:
        samples.append(Sample(name="http_requests_total", value=total, timestamp=at, labels={}))
        samples.append(
            Sample(name="http_errors_total", value=bad, timestamp=at, labels={"code": "500"})
        )
        at += STEP
        total += 100
        if errors_from < at <= errors_until:
            bad += 2
    return samples


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MetricsStore]:
    sample_store = MetricsStore(tmp_path / "metrics.duckdb", MetricsSettings(), KEEP_ALL_S)
    await sample_store.open()
    yield sample_store
    await sample_store.close()


async def test_page_fires_when_the_hour_has_burnt_enough_and_ends_with_the_burn(
    store: MetricsStore,
) -> None:
    stop = E + 3600  # the errors stop an hour after they began
    samples = traffic(E - 6 * 3600, E + 2 * 3600, E, stop)
    for index in range(0, len(samples), 10_000):
        chunk = samples[index : index + 10_000]
        await store.store(
            index + 1, [SamplesIngested(aggregate_id="t", samples=chunk, received_at=E)]
        )
    config = parse_config(CONFIG)
    now = [E]
    book = SloBook(config.slos, SloReader(store, lambda: now[0]), clock=lambda: now[0])
    replay = RuleReplay(config.rules, start=E)
    sent: list[tuple[str, SamplesIngested]] = []

    async def publish(subject: str, event: SamplesIngested) -> None:
        sent.append((subject, event))
        await replay.batch(event.received_at, event.samples)

    evaluator = BurnEvaluator(book, publish, clock=lambda: now[0])

    def page(samples: list[Sample]) -> float:
        return next(
            s["value"]
            for s in samples
            if s["name"] == "vigil_slo_burn_alert" and s["labels"]["urgency"] == "page"
        )

    # at E + 10 n the hour holds n - 1 error samples: burn (n - 1) / 18, 14.4 at n = 261
    for n in (30, 260):
        now[0] = E + STEP * n
        assert page(await evaluator.tick()) == 0.0
    now[0] = E + STEP * 261
    fired_at = now[0]
    sent_samples = await evaluator.tick()
    assert page(sent_samples) == 1.0
    rates = {
        s["labels"]["window"]: s["value"]
        for s in sent_samples
        if s["name"] == "vigil_slo_burn_rate"
    }
    assert rates["1h"] == pytest.approx(260 / 18)
    assert rates["5m"] == pytest.approx(20.0)
    assert sent[-1][0] == SUBJECT == "metrics.samples.slo"

    # after the errors stop at S, the 5 m window at S + 10 j holds 31 - j error samples:
    # burn 2 (31 - j) / 3 falls below 14.4 at j = 10, whatever the hour still says
    now[0] = stop + 90
    assert page(await evaluator.tick()) == 1.0
    now[0] = stop + 100
    cleared_samples = await evaluator.tick()
    assert page(cleared_samples) == 0.0

    changes = [c for c in replay.changes() if c.rule == "SLOBurnRatePage"]
    assert [(c.kind, c.severity, c.at) for c in changes] == [
        ("fired", "critical", fired_at),
        ("resolved", "critical", stop + 100),
    ]
    assert changes[0].labels["slo"] == "api-availability"
    assert changes[0].labels["service"] == "api"
    assert "api-availability" in changes[0].annotations["summary"]
