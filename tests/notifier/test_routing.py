"""The routing tree: Alertmanager's matchers and tree walk, groups and the file's errors."""

from __future__ import annotations

import pytest

from services.notifier.routing import compile_tree, routes_for
from shared.config import ConfigError, parse_config
from shared.events import AlertFired, IncidentOpened
from shared.matchers import parse_matcher
from shared.routingconfig import RouteConfig


def fired(rule: str = "HighCPU", severity: str = "critical", **labels: str) -> AlertFired:
    return AlertFired(
        aggregate_id=f"alert-{rule}-{labels.get('host', '')}",
        rule=rule,
        fingerprint="fp",
        metric="cpu_percent",
        labels=labels,
        severity=severity,  # type: ignore[arg-type]
        value=97,
        threshold=90,
    )


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity="critical"', {"severity": "warning"}, False),
        ("env!=dev", {"env": "prod"}, True),
        ("env!=dev", {}, True),
        ('team=~"db|web"', {"team": "db"}, True),
        ('team=~"db|web"', {"team": "dba"}, False),  # anchored, as in Prometheus
        ('host!~"web-.*"', {"host": "db-1"}, True),
        ('host!~"web-.*"', {"host": "web-1"}, False),
        (r'msg="say \"hi\""', {"msg": 'say "hi"'}, True),
        ('missing=""', {}, True),
    ],
)
def test_matchers_mean_what_they_do_in_alertmanager(
    text: str, labels: dict[str, str], expected: bool
) -> None:
    assert parse_matcher(text).matches(labels) is expected


def test_the_deepest_matching_route_takes_the_event_and_continue_lets_siblings_match() -> None:
    tree = compile_tree(
        RouteConfig.model_validate(
            {
                "channels": ["ops"],
                "group_by": ["rule"],
                "routes": [
                    {
                        "matchers": ['severity="critical"'],
                        "channels": ["pagerduty"],
                        "escalation_policy": "primary",
                        "continue": True,
                        "routes": [{"matchers": ['team="db"'], "channels": ["dba"]}],
                    },
                    {"matchers": ['rule=~"High.*"'], "group_by": ["..."]},
                    {"matchers": ["env=prod"], "channels": ["never"]},
                ],
            }
        )
    )
    critical = routes_for(tree, fired(team="db", env="prod"))
    # the critical route's db child (inheriting its policy), then the next sibling; the
    # third is not tried because the second did not continue
    assert [(m.route, m.channels, m.policy) for m in critical] == [
        ("root.0.0", ("dba",), "primary"),
        ("root.1", ("ops",), None),
    ]
    warning = routes_for(tree, fired(rule="DiskFull", severity="warning", env="dev"))
    assert [(m.route, m.channels) for m in warning] == [("root", ("ops",))]


def test_groups_follow_group_by_and_dots_mean_every_alert_alone() -> None:
    tree = compile_tree(RouteConfig.model_validate({"group_by": ["rule"]}))
    a, b = routes_for(tree, fired(host="web-1")), routes_for(tree, fired(host="web-2"))
    assert a[0].group == b[0].group
    assert routes_for(tree, fired(rule="Other"))[0].group != a[0].group
    alone = compile_tree(None)
    one, two = routes_for(alone, fired(host="web-1")), routes_for(alone, fired(host="web-2"))
    assert one[0].group != two[0].group
    assert one[0].channels is None  # no tree: every channel, each by its events
    assert one[0].grouping.group_wait_s == 0.0  # the first page is never held


def test_incidents_route_on_severity_and_kind() -> None:
    tree = compile_tree(
        RouteConfig.model_validate(
            {"routes": [{"matchers": ["kind=incident"], "channels": ["status-page"]}]}
        )
    )
    opened = IncidentOpened(aggregate_id="inc-1", title="API down", severity="critical")
    assert [m.channels for m in routes_for(tree, opened)] == [("status-page",)]
    assert [m.channels for m in routes_for(tree, fired())] == [None]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "route:\n  routes:\n    - matchers: ['severity=critical', 'team=~\"(\"']\n",
            "route.routes[0].matchers: matchers[1]: invalid regular expression '('",
        ),
        (
            "route:\n  matchers: ['not a matcher']\n",
            "route.matchers: matchers[0]: 'not a matcher' is not a matcher",
        ),
        ("route:\n  group_wait: soon\n", "route.group_wait: duration must be like"),
        ("route:\n  contine: true\n", "route.contine: Extra inputs are not permitted"),
    ],
)
def test_bad_routes_name_the_field(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(text)
    assert expected in str(error.value)
