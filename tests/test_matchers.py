"""Label matchers: one parser with Alertmanager's meaning for routes, rules, inhibition,
maintenance windows and silences, and each place's errors naming its field."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.alerts.silences import compile_matchers
from shared.config import ConfigError, parse_config
from shared.errors import InvalidInput
from shared.events.silences import SilenceMatcher
from shared.matchers import Matcher, MatcherError, parse_matcher


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('team=~"db|web"', {"team": "dba"}, False),  # anchored at both ends
        ("team!=db", {}, True),  # a missing label is the empty string
        ('team=""', {}, True),
        (r'host=~"web\d+"', {"host": "web12"}, True),  # \d is not an escape: the regex's
        (r"host=~web\d+", {"host": "web12"}, True),
        (r'msg="a\\b"', {"msg": "a\\b"}, True),
        (r'msg="line\nnext"', {"msg": "line\nnext"}, True),
        (r"msg=say\"hi\"", {"msg": 'say"hi"'}, True),  # escapes hold unquoted too
        ('  host = "web 1"  ', {"host": "web 1"}, True),
        ("host=web 1", {"host": "web 1"}, True),
        ("x==y", {"x": "=y"}, True),
    ],
)
def test_matchers_mean_what_they_do_in_alertmanager(
    text: str, labels: dict[str, str], expected: bool
) -> None:
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "part", "says"),
    [
        ("host~web", "", "is not a matcher"),
        ("{host=web}", "name", "label name '{host'"),
        ("9x=a", "name", "label name '9x'"),
        ('host="web', "value", "opens a quote it does not close"),
        ('host=we"b', "value", "not escaped"),
        ('host="a"b"', "value", "not escaped"),
        ("host=~(web", "value", "invalid regular expression '(web'"),
        ("host=~a{99999999999}", "value", "invalid regular expression"),  # OverflowError
        ("host=~" + "(" * 499 + ")" * 499, "value", "invalid regular expression"),  # recursion
        ("host=" + "x" * 1001, "value", "longer than 1000"),
        ("host=" + "x" * 3000, "", "at most 2300 characters"),
    ],
)
def test_a_bad_matcher_says_what_is_wrong_with_it(text: str, part: str, says: str) -> None:
    with pytest.raises(MatcherError) as bad:
        parse_matcher(text)
    assert (bad.value.part, says in bad.value.message) == (part, True), bad.value.message


BAD_REGEX = "host=~a{99999999999}"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (f"route:\n  matchers: ['{BAD_REGEX}']\n", "route.matchers: matchers[0]: "),
        (
            f"inhibit_rules:\n  - source_matchers: [a=b]\n    target_matchers: ['{BAD_REGEX}']\n",
            "inhibit_rules[0].target_matchers: target_matchers[0]: ",
        ),
        (
            f"rules:\n  - {{name: r, metric: m, warning: 1, matchers: ['{BAD_REGEX}']}}\n",
            "rules[0].matchers[0]: ",
        ),
        (
            "rules:\n  - name: r\n    metric: m\n    warning: 1\n"
            f"    overrides: [{{matchers: [a=b, '{BAD_REGEX}'], warning: 2}}]\n",
            "rules[0].overrides[0].matchers[1]: ",
        ),
        (
            f"maintenance:\n  - name: w\n    matchers: ['{BAD_REGEX}']\n"
            "    start: 2026-05-01T22:00:00Z\n    end: 2026-05-01T23:00:00Z\n",
            "maintenance[0].matchers[0]: ",
        ),
    ],
)
def test_every_place_refuses_a_bad_matcher_naming_its_field(text: str, named: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(text)
    assert f"{named}invalid regular expression 'a{{99999999999}}'" in str(refused.value)


def test_a_silence_refuses_a_regex_too_large_to_compile_naming_the_value() -> None:
    matcher = SilenceMatcher(name="host", value="a{99999999999}", isRegex=True)
    with pytest.raises(InvalidInput) as refused:
        compile_matchers([matcher])
    assert refused.value.field == "matchers[0].value"


@given(
    name=st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True),
    op=st.sampled_from(["=", "!="]),
    value=st.text(st.characters(codec="utf-8"), max_size=40),
)
def test_a_matcher_written_out_reads_back_the_same(name: str, op: str, value: str) -> None:
    matcher = Matcher.build(name, op, value)  # type: ignore[arg-type]
    assert parse_matcher(str(matcher)) == matcher
