"""A rule is checked field by field wherever it comes from (the file, the command, the
HTTP API share RuleConfig), each problem naming its field; every kind of rule reads back
as written after a trip through the log."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from services.alerts.app import build
from shared.bus import EventBus
from shared.commands import CREATE_RULE
from shared.config import ConfigError, VigilConfig, parse_config
from shared.errors import InvalidInput
from shared.events import RuleCreated, decode_event
from shared.ruleconfig import RuleConfig
from shared.settings import Settings
from tests.conftest import RuntimeFactory

BASE = {"name": "Disk", "metric": "disk", "warning": 80}

BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"function": "avg"}, "window", "function avg needs a window"),
    ({"window": "5m"}, "function", "a window needs a function"),
    ({"function": "p42", "window": "5m"}, "function", "Input should be"),
    ({"function": "avg", "window": "soon"}, "window", "duration must be like"),
    ({"function": "avg", "window": "2d"}, "window", "less than or equal to 86400"),
    ({"matchers": ["mount=~/var("]}, "matchers[0]", "invalid regular expression"),
    ({"matchers": ["no matcher"]}, "matchers[0]", "is not a matcher"),
    ({"matchers": ["host=~a{99999999999}"]}, "matchers[0]", "invalid regular expression"),
    ({"critical": 70}, "critical", "critical must be at or above warning"),
    (
        {"overrides": [{"matchers": ['mount="/var"'], "critical": 50}]},
        "overrides[0].critical",
        "critical must be at or above warning",
    ),
    ({"overrides": [{"matchers": ['mount="/var"']}]}, "overrides[0].warning", "an override needs"),
    ({"overrides": [{"matchers": [], "warning": 1}]}, "overrides[0].matchers", "at least 1"),
    ({"annotations": {"summary": "{{ value "}}, "annotations.summary", "template line 1"),
    ({"annotations": {"summary": "{{" + "(" * 1990 + "}}"}}, "annotations.summary", "deeply"),
    ({"annotations": {"bad-name": "x"}}, "annotations.bad-name", "should match pattern"),
    ({"set_labels": {"severity": "page"}}, "set_labels.severity", "given to every alert"),
    ({"set_labels": {"__x": "y"}}, "set_labels.__x", "should match pattern"),
    ({"absent_for": "5m"}, "warning", "an absence rule (absent_for) has no warning"),
    ({"severity": "warning"}, "severity", "severity is for absence rules"),
    ({"absent_by": ["host"]}, "absent_by", "absent_by needs absent_for"),
    (
        {"ratio": {"numerator": "e", "denominator": "r", "over": "5m"}},
        "metric",
        "a ratio rule's metric is its numerator",
    ),
    (
        {"metric": "", "ratio": {"numerator": "e", "denominator": "e", "over": "5m"}},
        "ratio.denominator",
        "another metric",
    ),
    (
        {
            "metric": "",
            "ratio": {"numerator": "e", "denominator": "r", "over": "5m"},
            "function": "avg",
            "window": "5m",
        },
        "function",
        "a ratio has its own window",
    ),
    ({"metric": ""}, "metric", "Field required"),
    ({"flapping": {"changes": 0}}, "flapping.changes", "greater than or equal to 1"),
    ({"flapping": {"window": "soon"}}, "flapping.window", "duration must be like"),
    ({"flapping": {"enable": False}}, "flapping.enable", "Extra inputs are not permitted"),
]


def _yaml(fields: dict[str, Any]) -> str:
    return yaml.safe_dump({"rules": [{"name": "Ok", "metric": "m", "warning": 1}, fields]})


@pytest.mark.parametrize(("change", "field", "message"), BAD)
def test_a_bad_rule_in_the_file_names_its_field(
    change: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(_yaml({**BASE, **change}))
    assert f"rules[1].{field}: " in str(error.value), str(error.value)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "fields",
    [
        {**BASE, "matchers": ['mount=~"/var.*"', "env!=dev"], "labels": {"dc": "eu"}},
        {**BASE, "critical": 90, "overrides": [{"matchers": ['mount="/var"'], "warning": 60}]},
        {**BASE, "function": "p95", "window": "5m", "for": "1m"},
        {**BASE, "function": "last"},
        {**BASE, "flapping": {"enabled": False}},
        {**BASE, "flapping": {"changes": 3, "window": "1m"}},
        {"name": "Silent", "metric": "up", "absent_for": "5m", "absent_by": ["host"]},
        {"name": "Silent", "metric": "up", "absent_for": "5m", "severity": "warning"},
        {
            "name": "HighErrorRate",
            "ratio": {
                "numerator": "http_errors_total",
                "denominator": "http_requests_total",
                "over": "5m",
                "on": ["service"],
                "scale": 100,
            },
            "warning": 5,
            "critical": 10,
            "annotations": {"summary": "{{ labels.service }}: {{ value }} % errors"},
            "set_labels": {"team": "web", "owner": "alice"},
        },
    ],
)
def test_every_kind_of_rule_reads_back_as_written_from_the_log(fields: dict[str, Any]) -> None:
    rule = RuleConfig.model_validate(fields)
    stored = RuleCreated(aggregate_id=rule.name, rule=rule, by="ann")
    assert decode_event(stored.encode()) == stored  # as the log keeps it
    exported = rule.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    assert RuleConfig.model_validate(exported) == rule  # as `vigil config export` writes it


async def test_a_bad_rule_through_the_command_names_its_field(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    await start_service(build(settings, VigilConfig(rules=[])))
    for change, field, message in BAD:
        body = {"rule": {**BASE, **change}, "by": "ann"}
        with pytest.raises(InvalidInput) as refused:
            await bus.request(CREATE_RULE, body)
        dotted = field.replace("[", ".").replace("]", "")
        named = (refused.value.field or "").removesuffix(".[key]")  # a bad key, not its value
        assert named == f"rule.{dotted}", (change, refused.value.message)
        assert message in refused.value.message
