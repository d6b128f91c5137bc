"""A log search evaluated in Python against one line, for streams that never reach the
store: the live tail and log alert rules.

It answers as the store does: the text query's tree (``shared/logquery.py``) is matched
against the message's tokens from the same tokenizer, so a phrase is its tokens in a
row and words are whole, lower-cased tokens; levels and services are any-of, labels
exact matches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.logquery import And, Node, Not, Or, Term, parse_query, tokens


def _has_phrase(line: Sequence[str], phrase: tuple[str, ...]) -> bool:
    if len(phrase) == 1:
        return phrase[0] in line
    width = len(phrase)
    first = phrase[0]
    return any(
        line[i] == first and tuple(line[i : i + width]) == phrase
        for i in range(len(line) - width + 1)
    )


def evaluate(node: Node, line: Sequence[str], words: frozenset[str] | None = None) -> bool:
    """Whether a line of these tokens matches the query tree."""
    present = frozenset(line) if words is None else words
    if isinstance(node, Term):
        if len(node.tokens) == 1:
            return node.tokens[0] in present
        return all(t in present for t in node.tokens) and _has_phrase(line, node.tokens)
    if isinstance(node, And):
        return all(evaluate(child, line, present) for child in node.children)
    if isinstance(node, Or):
        return any(evaluate(child, line, present) for child in node.children)
    if isinstance(node, Not):
        return not evaluate(node.child, line, present)
    raise TypeError(f"not a query node: {node!r}")


@dataclass(frozen=True)
class LineFilter:
    """Every filter of a log search but the time range."""

    levels: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    labels: Mapping[str, str] = field(default_factory=dict)
    query: Node | None = None

    @classmethod
    def of(
        cls,
        levels: Sequence[str] = (),
        services: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        q: str = "",
    ) -> LineFilter:
        return cls(frozenset(levels), frozenset(services), dict(labels or {}), parse_query(q))

    def admits(self, entry: Mapping[str, Any], words: Sequence[str] | None = None) -> bool:
        """Whether the line passes every filter; ``words`` are its message's tokens when the
        caller has them already (several filters judging one line)."""
        if self.levels and entry.get("level", "info") not in self.levels:
            return False
        if self.services and entry.get("service", "") not in self.services:
            return False
        if self.labels:
            labels = entry.get("labels") or {}
            if any(labels.get(k) != v for k, v in self.labels.items()):
                return False
        if self.query is not None:
            line = tokens(str(entry.get("message", ""))) if words is None else words
            return evaluate(self.query, line)
        return True
