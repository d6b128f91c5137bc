"""Kill every part of Vigil, three times each, under load: nothing accepted is lost, nothing
is doubled beyond the documented at-least-once window, and paging resumes after every kill.

``vigil up`` (embedded NATS, SQLite) pages a signature-checking webhook while a careful
client sends 2,000 samples/s and a unique critical series every 30 ms; nats-server, each
service and the supervisor are SIGKILLed three times each. Then: samples accepted =
stored, critical series = alerts = incidents = AlertFired pages = IncidentOpened pages,
and every kill was followed by a page. The harness is ``tests/system/chaos/``;
``bench/chaos.py`` runs the same scenario longer and prints the figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.system.chaos import TARGETS, Scenario, run_chaos

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# Sized for 3 minutes on two cores, start-up and settling included, with the load generator
# on the same cores: one critical series every 30 ms is about 130 deliveries a second, which
# leaves the paging path the headroom to work off what each kill leaves behind.
SCENARIO = Scenario(
    duration_s=80.0, settle_timeout_s=75.0, rounds=3, targets=TARGETS, critical_every_s=0.03
)


async def test_kills_under_load_lose_and_double_nothing(tmp_path: Path) -> None:
    outcome = await run_chaos(SCENARIO, tmp_path)
    print(outcome.figures())

    assert len([k for k in outcome.kills if k.at]) == SCENARIO.rounds * len(SCENARIO.targets)
    assert outcome.series_sent > 0 and outcome.samples_accepted > 0
    assert outcome.problems() == [], outcome.figures()
