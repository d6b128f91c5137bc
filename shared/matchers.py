r"""Label matchers as Alertmanager writes them: ``name=value``, ``name!=value``,
``name=~regex``, ``name!~regex``; a value may be double-quoted (``host="web 1"``).

The one parser for every place that takes matchers (routes, rules and their overrides,
inhibition, silences, maintenance windows), so a matcher means the same wherever it is
written. Alertmanager's semantics throughout: a regex is anchored at both ends, and a
label the alert lacks counts as the empty string, so ``team!="db"`` matches an alert
without a team. In a value ``\"``, ``\\`` and ``\n`` are escapes and any other backslash
stands for itself (``host=~"web\d+"`` is the regex ``web\d+``); a double quote may only
open and close it.

A matcher that matches the empty string matches every alert lacking its label; silences
and maintenance windows need at least one that does not, or they would match everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Op = Literal["=", "!=", "=~", "!~"]

MAX_MATCHER_VALUE_CHARS = 1000
# a name, an operator and the longest value with every character escaped: the text is
# refused before any parsing work when longer
MAX_MATCHER_TEXT_CHARS = 2 * MAX_MATCHER_VALUE_CHARS + 300
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MATCHER = re.compile(r"^([^=!~\s]+)\s*(=~|!~|!=|=)\s*(.*)$", re.S)
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_FORMS = 'host=web-1, host!=web-1, host=~"web-.*" or host!~"web-.*"'


class MatcherError(ValueError):
    """A matcher that cannot be used; ``part`` says which of it (``name`` or ``value``)."""

    def __init__(self, message: str, part: str = ""):
        super().__init__(message)
        self.message = message
        self.part = part


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: Op
    value: str
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, name: str, value: str, is_regex: bool = False, is_equal: bool = True) -> Matcher:
        """From Alertmanager's JSON form (``isRegex``, ``isEqual``); raises MatcherError."""
        op: Op = ("=~" if is_equal else "!~") if is_regex else ("=" if is_equal else "!=")
        return cls.build(name, op, value)

    @classmethod
    def build(cls, name: str, op: Op, value: str) -> Matcher:
        if not LABEL_NAME.match(name):
            raise MatcherError(f"label name {name!r} must match [a-zA-Z_][a-zA-Z0-9_]*", "name")
        if len(value) > MAX_MATCHER_VALUE_CHARS:
            raise MatcherError(
                f"value is longer than {MAX_MATCHER_VALUE_CHARS} characters", "value"
            )
        pattern = None
        if op in ("=~", "!~"):
            try:
                pattern = re.compile(f"(?:{value})")
            # a{99999999999} overflows, thousands of nested groups exhaust the stack
            except (re.error, OverflowError, RecursionError) as exc:
                problem = f"invalid regular expression {value!r}: {exc}"
                raise MatcherError(problem, "value") from None
        return cls(name, op, value, pattern)

    @property
    def is_regex(self) -> bool:
        return self.op in ("=~", "!~")

    @property
    def is_equal(self) -> bool:
        return self.op in ("=", "=~")

    def matches_value(self, value: str) -> bool:
        if self.pattern is not None:
            found = self.pattern.fullmatch(value) is not None
        else:
            found = value == self.value
        return found if self.is_equal else not found

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.matches_value(labels.get(self.name, ""))

    @property
    def matches_empty(self) -> bool:
        """Whether it matches an alert that lacks the label."""
        return self.matches_value("")

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def _unescape(raw: str) -> str:
    """The value of a matcher's third part, read as Alertmanager reads it."""
    quoted = raw.startswith('"')
    body = raw[1:] if quoted else raw
    closed = False
    out: list[str] = []
    index = 0
    while index < len(body):
        ch = body[index]
        if ch == "\\" and index + 1 < len(body):
            nxt = body[index + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            index += 2
            continue
        if ch == '"':
            if not quoted or index != len(body) - 1:
                raise MatcherError(
                    f'value {raw} has a " that is not escaped (write \\" inside a value)',
                    "value",
                )
            closed = True
        else:
            out.append(ch)
        index += 1
    if quoted and not closed:
        raise MatcherError(f"value {raw} opens a quote it does not close", "value")
    return "".join(out)


def parse_matcher(text: str) -> Matcher:
    """One matcher from its text (``severity=~"warn.*"``); raises MatcherError."""
    if len(text) > MAX_MATCHER_TEXT_CHARS:
        raise MatcherError(f"a matcher is at most {MAX_MATCHER_TEXT_CHARS} characters")
    found = _MATCHER.match(text.strip())
    if found is None:
        raise MatcherError(f"{text!r} is not a matcher like {_FORMS}")
    name, op, raw = found.groups()
    return Matcher.build(name, op, _unescape(raw))  # type: ignore[arg-type]


def check_texts(texts: list[str], field: str) -> list[str]:
    """The texts unchanged when each is a matcher; else a ValueError naming ``field[i]``."""
    for index, text in enumerate(texts):
        try:
            parse_matcher(text)
        except MatcherError as exc:
            raise ValueError(f"{field}[{index}]: {exc.message}") from None
    return texts


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def matches_everything(matchers: Iterable[Matcher]) -> bool:
    """True when every matcher matches the empty string: nothing narrows what they match."""
    return all(m.matches_empty for m in matchers)


EVERYTHING = (
    "at least one matcher must not match the empty string (a label the alert lacks), "
    "or it would match every alert"
)
