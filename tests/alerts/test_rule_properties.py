"""Properties of evaluation over random sample sequences, whatever the rule: never two open
alerts for one series, nothing escalates or resolves an alert that is not open, every
event once (redelivered batches included), and the state in memory is the log's."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.alerts.domain import fold
from services.alerts.handlers import EVALUATOR
from services.alerts.replay import RuleReplay
from shared import subjects
from shared.consumer import Delivery
from shared.events import (
    AlertEscalated,
    AlertEvent,
    AlertFired,
    AlertResolved,
    Sample,
    SamplesIngested,
)
from shared.ruleconfig import RuleConfig

RULES: list[dict[str, Any]] = [
    {"name": "Raw", "metric": "m", "warning": 50, "critical": 80, "hysteresis": 5},
    {"name": "Held", "metric": "m", "warning": 50, "critical": 80, "for": 20},
    {
        "name": "Windowed",
        "metric": "m",
        "function": "avg",
        "window": "1m",
        "warning": 40,
        "critical": 70,
        "overrides": [{"matchers": ["host=b"], "warning": 20}],
    },
    {"name": "P90", "metric": "m", "function": "p90", "window": "30s", "critical": 90},
    {"name": "Rising", "metric": "m", "function": "delta", "window": "30s", "warning": 30},
    {"name": "Silent", "metric": "m", "absent_for": "45s"},
    {
        "name": "Ratio",
        "ratio": {"numerator": "m", "denominator": "total", "over": "1m"},
        "warning": 0.5,
        "direction": "above",
    },
]

steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=40),  # seconds since the step before
        st.sampled_from(["a", "b", "c"]),  # host
        st.floats(min_value=0, max_value=100, allow_nan=False),  # value
        st.integers(min_value=0, max_value=4),  # then deliver again the batch this many back
    ),
    min_size=1,
    max_size=60,
)


async def run(sequence: list[tuple[int, str, float, int]]) -> RuleReplay:
    rules = [RuleConfig.model_validate(r) for r in RULES]
    replay = RuleReplay(rules, start=0)
    sent: list[SamplesIngested] = []
    at = 0.0
    for gap, host, value, back in sequence:
        at += gap
        samples = [
            Sample(name="m", value=value, labels={"host": host}),
            Sample(name="total", value=at * 2, labels={"host": host}),
        ]
        await replay.batch(at, samples, source="p")
        sent.append(SamplesIngested(aggregate_id="p", samples=samples, received_at=at))
        if back and back <= len(sent):  # an earlier batch, at its stream position, again
            seq = len(sent) - back + 1
            delivery = Delivery("METRICS", subjects.samples("p"), seq, 2, EVALUATOR.durable)
            await replay.evaluator.handle(sent[seq - 1], delivery)
    await replay.advance(at + 120)
    return replay


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_never_two_open_alerts_for_one_series_and_resolve_only_after_a_fire(
    sequence: list[tuple[int, str, float, int]],
) -> None:
    replay = asyncio.run(run(sequence))
    events = [r.event for r in replay.log.records if isinstance(r.event, AlertEvent)]

    assert len({e.id for e in events}) == len(events)  # no event twice
    open_by_series: dict[str, str] = {}
    versions: dict[str, int] = defaultdict(int)
    for event in events:
        fp = event.fingerprint
        if isinstance(event, AlertFired):
            assert fp not in open_by_series, f"second open alert for {event.rule} {event.labels}"
            open_by_series[fp] = event.aggregate_id
        else:
            assert open_by_series.get(fp) == event.aggregate_id, f"{event.type} with none open"
            if isinstance(event, AlertEscalated):
                assert event.severity == "critical" and event.previous_severity == "warning"
            if isinstance(event, AlertResolved):
                del open_by_series[fp]
        versions[event.aggregate_id] += 1
        assert event.version == versions[event.aggregate_id]

    # what the evaluator holds open is exactly what the log says is open
    by_alert: dict[str, list[AlertEvent]] = defaultdict(list)
    for event in events:
        by_alert[event.aggregate_id].append(event)
    rebuilt = {}
    for history in by_alert.values():
        alert = fold(history)
        if alert is not None and alert.is_open:
            rebuilt[alert.fingerprint] = alert
    assert rebuilt == replay.writer.book.open
