"""Label matchers as Alertmanager writes them: ``name=value``, ``name!=value``,
``name=~regex``, ``name!~regex``; a value may be double-quoted (``host="web 1"``).

Alertmanager's semantics throughout: a regex is anchored at both ends, and a label the
alert lacks counts as the empty string, so ``team!="db"`` matches an alert without a
team. A matcher that matches the empty string therefore matches every alert lacking its
label; silences and maintenance windows need at least one that does not, or they would
match everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Op = Literal["=", "!=", "=~", "!~"]

MAX_MATCHER_VALUE_CHARS = 1000
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MATCHER = re.compile(r"^\s*([^=!~\s]+)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.S)
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


class MatcherError(ValueError):
    """A matcher that cannot be used; ``part`` says which of it (``name`` or ``value``)."""

    def __init__(self, message: str, part: str = ""):
        super().__init__(message)
        self.message = message
        self.part = part


@dataclass(frozen=True)
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
            except re.error as exc:
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


def _unquote(text: str) -> str:
    if not (text.startswith('"') and len(text) >= 2 and text.endswith('"')):
        if text.startswith('"'):
            raise MatcherError(f"value {text!r} opens a quote it does not close", "value")
        return text
    out: list[str] = []
    chars = iter(text[1:-1])
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            if nxt not in _ESCAPES:
                raise MatcherError(f"unknown escape \\{nxt} in {text}", "value")
            out.append(_ESCAPES[nxt])
        elif ch == '"':
            raise MatcherError(f'value {text} has an unescaped " inside its quotes', "value")
        else:
            out.append(ch)
    return "".join(out)


def parse_matcher(text: str) -> Matcher:
    """One matcher from its text (``severity=~"warn.*"``); raises MatcherError."""
    found = _MATCHER.match(text)
    if found is None:
        raise MatcherError(
            f'{text!r} is not a matcher like host=web-1, host!=web-1, host=~"web-.*" '
            'or host!~"web-.*"'
        )
    name, op, raw = found.groups()
    return Matcher.build(name, op, _unquote(raw))  # type: ignore[arg-type]


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def matches_everything(matchers: Iterable[Matcher]) -> bool:
    """True when every matcher matches the empty string: nothing narrows what they match."""
    return all(m.matches_empty for m in matchers)


EVERYTHING = (
    "at least one matcher must not match the empty string (a label the alert lacks), "
    "or it would match every alert"
)
