"""The text query: parsed into a tree, rendered for FTS5 and tsquery, and matched the same
way on SQLite and PostgreSQL; a malformed query is refused naming q."""

from __future__ import annotations

import pytest

from services.metrics.logs import reads
from services.metrics.logs.store import LogStore
from services.metrics.logs.textsearch import fts5, tsquery
from shared.commands import SearchLogs
from shared.errors import InvalidInput
from shared.logquery import And, Not, Or, Term, parse_query
from tests.logs.conftest import batch, lines


def test_words_phrases_operators_and_parentheses_make_a_tree() -> None:
    assert parse_query("") is None
    assert parse_query("   ") is None
    assert parse_query("Timeout") == Term(("timeout",))
    assert parse_query('db "connection refused"') == And(
        (Term(("db",)), Term(("connection", "refused")))
    )
    assert parse_query("a OR b c") == Or((Term(("a",)), And((Term(("b",)), Term(("c",))))))
    assert parse_query("a AND (b OR c)") == And((Term(("a",)), Or((Term(("b",)), Term(("c",))))))
    assert parse_query("NOT a") == Not(Term(("a",)))
    assert parse_query("-a b") == And((Not(Term(("a",))), Term(("b",))))
    assert parse_query('-"x y"') == Not(Term(("x", "y")))
    assert parse_query("-(a OR b)") == Not(Or((Term(("a",)), Term(("b",)))))
    # lower-case operators are words; punctuation inside a word makes a phrase of its parts
    assert parse_query("a or b") == And((Term(("a",)), Term(("or",)), Term(("b",))))
    assert parse_query("user-42") == Term(("user", "42"))
    assert parse_query("10.0.0.1") == Term(("10", "0", "0", "1"))


@pytest.mark.parametrize(
    ("q", "says"),
    [
        ('"unclosed', "has no closing"),
        ("(a OR b", "is not closed"),
        ("a)", "unexpected ')'"),
        ("a OR", "ends where"),
        ("AND a", "unexpected 'AND'"),
        ("a AND OR b", "unexpected 'OR'"),
        ("NOT", "ends where"),
        ("()", "unexpected ')'"),
        ("!!!", "has no letters or digits"),
        ('""', "has no letters or digits"),
        (" ".join(f"w{n}" for n in range(65)), "more than 64"),
        ("(" * 20 + "a" + ")" * 20, "nested deeper"),
    ],
)
def test_a_malformed_query_is_refused_naming_q(q: str, says: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_query(q)
    assert refused.value.field == "q"
    assert str(refused.value).startswith("q: ")
    assert says in str(refused.value)


def test_only_normalised_tokens_reach_either_syntax() -> None:
    node = parse_query('x" OR "NEAR(a b) col:* it\'s;DROP TABLE metrics_logs;--')
    assert node is not None
    rendered_fts, rendered_pg = fts5(node), tsquery(node)
    assert rendered_fts is not None
    for bad in (";", ":", "*", "--", "NEAR("):
        assert bad not in rendered_fts.replace(" NOT ", " ").replace(" OR ", " ")
        assert bad not in rendered_pg
    assert '"it s drop"' in rendered_fts
    assert "'metrics' <-> 'logs'" in rendered_pg


def test_a_lone_negation_is_not_fts5_syntax() -> None:
    assert fts5(Not(Term(("a",)))) is None
    assert fts5(Or((Term(("a",)), Not(Term(("b",)))))) is None
    assert fts5(And((Term(("a",)), Not(Term(("b",)))))) == '(("a") NOT "b")'
    assert tsquery(Not(Term(("a", "b")))) == "!(('a' <-> 'b'))"


MESSAGES = (
    "connection refused by db-1",
    "Connection reset by peer",
    "refused connection to cache",
    "disk full on db-2",
    "user 42 logged in",
    "payment declined: card expired",
)


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("connection", {0, 1, 2}),
        ("CONNECTION refused", {0, 2}),
        ('"connection refused"', {0}),
        ('"refused connection"', {2}),
        ("db", {0, 3}),
        ("db-1", {0}),
        ("connection OR disk", {0, 1, 2, 3}),
        ("connection AND NOT refused", {1}),
        ("connection -refused", {1}),
        ("-connection", {3, 4, 5}),
        ("NOT (connection OR db)", {4, 5}),
        ("(disk OR user) 42", {4}),
        ("payment OR -connection", {3, 4, 5}),
        ("expired AND (card OR -payment)", {5}),
        ("refus", set()),  # whole words only
        ("conn*", set()),  # no wildcards: the star is not a letter
    ],
)
async def test_text_queries_match_the_same_lines_on_both_backends(
    log_store: LogStore, q: str, found: set[int]
) -> None:
    await log_store.store_sequenced([(1, batch(lines(*MESSAGES)))])
    page = await reads.search(log_store, SearchLogs(q=q))
    assert {MESSAGES.index(e["message"]) for e in page["entries"]} == found
