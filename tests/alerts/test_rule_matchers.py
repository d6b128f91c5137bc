"""Which series a rule watches (exact labels and Alertmanager matchers), the thresholds
each series is judged by (overrides), and what its alert carries (static labels and
rendered annotations)."""

from __future__ import annotations

from typing import Any

import pytest

from services.alerts import domain
from services.alerts.replay import RuleReplay
from services.alerts.rulecompile import CompiledRule
from shared.events import AlertEscalated, AlertEvent, AlertFired, Sample
from shared.ruleconfig import RuleConfig


def rule(**fields: Any) -> RuleConfig:
    return RuleConfig.model_validate({"name": "DiskFull", "metric": "disk", **fields})


def disk(value: float, **labels: str) -> Sample:
    return Sample(name="disk", value=value, labels=labels)


def events(replay: RuleReplay) -> list[AlertEvent]:
    return [r.event for r in replay.log.records if isinstance(r.event, AlertEvent)]


@pytest.mark.parametrize(
    ("matcher", "watched", "ignored"),
    [
        ('mount="/var"', {"mount": "/var"}, {"mount": "/var/log"}),
        ("env!=dev", {"env": "prod"}, {"env": "dev"}),
        ("mount=~/var.*", {"mount": "/var/log"}, {"mount": "/srv/var"}),  # anchored
        ('host!~"web-.*"', {"host": "db-1"}, {"host": "web-2"}),
        ('team=""', {"host": "a"}, {"team": "db"}),  # a missing label is the empty value
    ],
)
def test_matchers_select_series_as_alertmanager_does(
    matcher: str, watched: dict[str, str], ignored: dict[str, str]
) -> None:
    check = CompiledRule.of(rule(matchers=[matcher], warning=80))
    assert check.matches(watched)
    assert not check.matches(ignored)


async def test_matchers_and_exact_labels_must_all_hold() -> None:
    # given a rule for prod (exact label) mounts under /var (matcher)
    replay = RuleReplay([rule(labels={"env": "prod"}, matchers=["mount=~/var.*"], warning=80)])
    # when three series cross the threshold, of which one is prod under /var
    await replay.batch(
        0,
        [
            disk(90, env="prod", mount="/var/lib"),
            disk(90, env="dev", mount="/var/lib"),
            disk(90, env="prod", mount="/"),
        ],
    )
    # then only that one fires
    (fired,) = replay.changes()
    assert fired.labels == {"env": "prod", "mount": "/var/lib"}


async def test_the_first_matching_override_sets_the_thresholds_of_a_series() -> None:
    # given a disk rule at 80/90, lower for /var, and lower still for /var on db hosts
    # (listed after the /var override, so never reached for /var)
    replay = RuleReplay(
        [
            rule(
                warning=80,
                critical=90,
                overrides=[
                    {"matchers": ['mount="/var"'], "warning": 60},
                    {"matchers": ['mount="/var"', "host=~db.*"], "warning": 10},
                    {"matchers": ['mount="/data"'], "warning": 85, "critical": 95},
                ],
            )
        ]
    )
    # when each mount is at 70 and then at 92
    mounts = ("/", "/var", "/data")
    await replay.batch(0, [disk(70, host="db-1", mount=m) for m in mounts])
    await replay.batch(10, [disk(92, host="db-1", mount=m) for m in mounts])
    # then /var fired at 70 by its own warning and escalated at 92 by the rule's critical;
    # / fired straight at critical; /data (critical 95) fired warning only
    seen = [(c.at, c.labels["mount"], c.kind, c.severity) for c in replay.changes()]
    assert seen == [
        (0, "/var", "fired", "warning"),
        (10, "/", "fired", "critical"),
        (10, "/var", "escalated", "critical"),
        (10, "/data", "fired", "warning"),
    ]
    (var_fired,) = [e for e in events(replay) if e.labels["mount"] == "/var"][:1]
    assert isinstance(var_fired, AlertFired) and var_fired.threshold == 60


async def test_an_override_resolves_by_its_own_threshold() -> None:
    replay = RuleReplay(
        [rule(warning=80, hysteresis=1, overrides=[{"matchers": ['mount="/var"'], "warning": 60}])]
    )
    await replay.batch(0, [disk(65, mount="/var")])
    await replay.batch(10, [disk(59.5, mount="/var")])  # within the hysteresis: still firing
    await replay.batch(20, [disk(58.5, mount="/var")])
    assert [c.kind for c in replay.changes()] == ["fired", "resolved"]


async def test_static_labels_join_the_alert_and_keep_its_identity() -> None:
    # given a rule that adds team and owner to its alerts
    owned = rule(warning=80, set_labels={"team": "db", "owner": "alice"})
    replay = RuleReplay([owned])
    await replay.batch(0, [disk(85, host="db-1")])
    (fired,) = events(replay)
    # then routing sees them on the alert
    assert fired.labels == {"host": "db-1", "team": "db", "owner": "alice"}
    # and the series' fingerprint is the series', whatever static labels say
    assert fired.fingerprint == domain.fingerprint("DiskFull", {"host": "db-1"})

    # when the rule's static labels change while the alert is open
    await replay.evaluator.use_rules([rule(warning=80, set_labels={"team": "storage"})])
    await replay.batch(10, [disk(95, host="db-1")])
    await replay.batch(20, [disk(10, host="db-1")])
    # then the same alert goes on and resolves; no second alert is opened
    assert [type(e).__name__ for e in events(replay)] == ["AlertFired", "AlertResolved"]
    assert {e.aggregate_id for e in events(replay)} == {fired.aggregate_id}


async def test_annotations_are_rendered_with_the_labels_and_value() -> None:
    annotated = rule(
        warning=80,
        critical=90,
        summary="plain summary",
        annotations={
            "summary": "{{ labels.mount }} on {{ labels.host }} is {{ value | round(1) }}% full",
            "description": "{{ severity }} at or above {{ threshold }} ({{ rule }}/{{ metric }})",
            "runbook_url": "https://runbooks.example/disk#{{ labels.host }}",
            "dashboard_url": "https://grafana.example/d/disk?host={{ labels.host }}",
            "missing": "[{{ labels.nope }}]",
        },
        set_labels={"team": "db"},
    )
    replay = RuleReplay([annotated])
    await replay.batch(0, [disk(85.04, host="db-1", mount="/var")])
    await replay.batch(10, [disk(93, host="db-1", mount="/var")])
    fired, escalated = events(replay)
    assert isinstance(fired, AlertFired) and isinstance(escalated, AlertEscalated)
    assert fired.annotations == {
        "summary": "/var on db-1 is 85.0% full",
        "description": "warning at or above 80.0 (DiskFull/disk)",
        "runbook_url": "https://runbooks.example/disk#db-1",
        "dashboard_url": "https://grafana.example/d/disk?host=db-1",
        "missing": "[]",  # a label the series lacks renders empty
    }
    assert fired.summary == "/var on db-1 is 85.0% full"  # the annotation wins over summary
    assert escalated.annotations["summary"] == "/var on db-1 is 93.0% full"
    assert escalated.annotations["description"] == "critical at or above 90.0 (DiskFull/disk)"


async def test_a_template_that_fails_when_rendered_goes_out_unrendered() -> None:
    # the sandbox refuses Python internals: the alert still fires, with the text as written
    sneaky = "{{ labels.__class__.__mro__ }}"
    replay = RuleReplay([rule(warning=80, annotations={"summary": sneaky})])
    await replay.batch(0, [disk(85, host="a")])
    (fired,) = events(replay)
    assert isinstance(fired, AlertFired)
    assert fired.annotations == {"summary": sneaky}
