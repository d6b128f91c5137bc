"""Ratios of two counters over a window: the error rate from raw counters."""

from __future__ import annotations

from typing import Any

import pytest

from services.alerts.handlers import EVALUATOR
from services.alerts.replay import RuleReplay
from shared import subjects
from shared.consumer import Delivery
from shared.events import Sample, SamplesIngested
from shared.ruleconfig import RuleConfig

# the built-in HighErrorRate (app_error_rate_percent at 5 / 10) from raw counters instead
ERROR_RATE = {
    "name": "HighErrorRate",
    "ratio": {
        "numerator": "http_errors_total",
        "denominator": "http_requests_total",
        "over": "5m",
        "scale": 100,
    },
    "warning": 5,
    "critical": 10,
}


def ratio_rule(**changes: Any) -> RuleConfig:
    return RuleConfig.model_validate({**ERROR_RATE, **changes})


def counters(errors: float, requests: float, **labels: str) -> list[Sample]:
    return [
        Sample(name="http_errors_total", value=errors, labels=labels),
        Sample(name="http_requests_total", value=requests, labels=labels),
    ]


def test_a_ratio_rule_watches_its_numerator() -> None:
    assert ratio_rule().metric == "http_errors_total"


async def test_the_error_rate_from_raw_counters_fires_escalates_and_resolves() -> None:
    replay = RuleReplay([ratio_rule()])
    # given 1,000 requests a minute
    await replay.batch(0, counters(0, 0, service="api"))
    await replay.batch(60, counters(10, 1000, service="api"))  # 1 %: quiet
    assert replay.changes() == []
    await replay.batch(120, counters(70, 2000, service="api"))  # 70 / 2000 = 3.5 % over 2 min
    await replay.batch(180, counters(230, 3000, service="api"))  # 230 / 3000 = 7.7 %
    await replay.batch(240, counters(530, 4000, service="api"))  # 530 / 4000 = 13.25 %
    await replay.batch(360, counters(540, 6000, service="api"))  # t=60..360: 530/5000 = 10.6 %
    await replay.batch(600, counters(560, 10000, service="api"))  # t=360..600: 20/4000 = 0.5 %
    seen = [(c.at, c.kind, c.severity, round(c.value or 0, 2)) for c in replay.changes()]
    assert seen == [
        (180, "fired", "warning", 7.67),
        (240, "escalated", "critical", 13.25),
        (600, "resolved", "critical", 0.5),
    ]
    assert replay.changes()[0].labels == {"service": "api"}


async def test_a_counter_reset_is_no_negative_error_rate() -> None:
    replay = RuleReplay([ratio_rule()])
    await replay.batch(0, counters(100, 10000, service="api"))
    await replay.batch(60, counters(110, 11000, service="api"))
    # the service restarted: both counters begin again
    await replay.batch(120, counters(60, 500, service="api"))
    # increase: errors 10 + 60 = 70, requests 1000 + 500 = 1500: 4.7 %
    await replay.batch(121, counters(60, 500, service="api"))  # nothing new
    assert replay.changes() == []
    await replay.batch(180, counters(100, 600, service="api"))  # 110 / 1600 = 6.9 %
    (fired,) = replay.changes()
    assert fired.value == pytest.approx(110 / 1600 * 100)


async def test_no_requests_is_no_value_and_no_transition() -> None:
    replay = RuleReplay([ratio_rule()])
    await replay.batch(0, counters(0, 100, service="api"))
    await replay.batch(60, counters(50, 200, service="api"))  # 50 %
    (fired,) = replay.changes()
    # when no request comes in for a while (the denominator does not grow)
    await replay.batch(120, counters(50, 200, service="api"))
    await replay.batch(400, counters(50, 200, service="api"))  # nothing in the window at all
    # then the ratio has no value: the alert neither resolves nor fires again
    assert replay.changes() == [fired]


async def test_series_join_on_equal_labels_or_on_the_listed_ones() -> None:
    # given errors and requests per instance, joined on every label by default
    replay = RuleReplay([ratio_rule()])
    await replay.batch(
        0, counters(0, 0, service="api", instance="a") + counters(0, 0, service="api", instance="b")
    )
    await replay.batch(
        60,
        counters(80, 1000, service="api", instance="a")  # 8 %
        + counters(0, 1000, service="api", instance="b"),  # 0 %
    )
    assert [c.labels for c in replay.changes()] == [{"service": "api", "instance": "a"}]

    # given the same rule joined on service: the instances' counters are summed
    by_service = RuleReplay([ratio_rule(ratio={**ERROR_RATE["ratio"], "on": ["service"]})])
    await by_service.batch(
        0, counters(0, 0, service="api", instance="a") + counters(0, 0, service="api", instance="b")
    )
    await by_service.batch(
        60,
        counters(80, 1000, service="api", instance="a")
        + counters(0, 1000, service="api", instance="b"),
    )
    # (80 + 0) / (1000 + 1000) = 4 %: below the warning
    assert by_service.changes() == []
    await by_service.batch(120, counters(200, 2000, service="api", instance="a"))
    (fired,) = by_service.changes()
    assert fired.labels == {"service": "api"}
    assert fired.value == pytest.approx(200 / 3000 * 100)


async def test_a_ratio_only_counts_series_its_selector_allows() -> None:
    replay = RuleReplay([ratio_rule(matchers=["env!=dev"])])
    for at, errors in [(0, 0), (60, 500)]:
        await replay.batch(at, counters(errors, 10 * at, env="dev"))
    assert replay.changes() == []


async def test_a_ratio_and_a_later_sample_of_the_batch_both_fire_once_even_redelivered() -> None:
    cpu = RuleConfig.model_validate({"name": "HighCPU", "metric": "cpu", "warning": 90})
    replay = RuleReplay([ratio_rule(), cpu])
    await replay.batch(0, counters(0, 0, service="api"))
    # the ratio's counters come before the cpu sample that fires in the same batch
    hot = [*counters(50, 100, service="api"), Sample(name="cpu", value=95)]
    await replay.batch(60, hot)
    assert sorted(c.rule for c in replay.changes()) == ["HighCPU", "HighErrorRate"]

    again = SamplesIngested(aggregate_id="rules-test", samples=hot, received_at=60)
    delivery = Delivery("METRICS", subjects.samples("rules-test"), 2, 2, EVALUATOR.durable)
    await replay.evaluator.handle(again, delivery)
    assert len(replay.changes()) == 2
