"""The text query of a log search (``q``): words, "phrases", AND/OR/NOT, -word, parentheses.

Parsed here into a small tree; the log store renders the tree to its engine's syntax
(SQLite FTS5 MATCH, PostgreSQL tsquery) from the normalised tokens only, so no user text
ever reaches either syntax. The gateway parses too, to answer a malformed query with 422
before asking the store.

Words match whole tokens, case-insensitively: a token is a run of letters and digits
(what FTS5's unicode61 tokenizer and our PostgreSQL tokenizer both index). A word that
holds punctuation (``user-42``, ``10.0.0.1``) means the phrase of its tokens. Adjacent
terms must all match; OR binds looser than AND, NOT and ``-`` tighter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.errors import InvalidInput

MAX_TERMS = 64
MAX_DEPTH = 16
MAX_PHRASE_TOKENS = 32

TOKEN = re.compile(r"[^\W_]+")
OPERATORS = ("AND", "OR", "NOT")


def tokens(text: str) -> list[str]:
    """The searchable tokens of ``text``, lower-cased: the one tokenizer of both backends."""
    return [t.lower() for t in TOKEN.findall(text)]


@dataclass(frozen=True)
class Term:
    """A word or a phrase: its tokens, which must follow each other."""

    tokens: tuple[str, ...]


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


Node = Term | And | Or | Not


def malformed(message: str) -> InvalidInput:
    return InvalidInput(f"q: {message}", field="q")


@dataclass(frozen=True)
class _Lexeme:
    kind: str  # word, phrase, (, ), AND, OR, NOT, -
    text: str
    at: int


def _lex(q: str) -> list[_Lexeme]:
    out: list[_Lexeme] = []
    i, n = 0, len(q)
    while i < n:
        ch = q[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            out.append(_Lexeme(ch, ch, i))
            i += 1
        elif ch == '"':
            end = q.find('"', i + 1)
            if end < 0:
                raise malformed(f'the phrase opened at character {i + 1} has no closing "')
            out.append(_Lexeme("phrase", q[i + 1 : end], i))
            i = end + 1
        elif ch == "-" and i + 1 < n and (q[i + 1] in '("' or not q[i + 1].isspace()):
            out.append(_Lexeme("-", ch, i))
            i += 1
        else:
            start = i
            while i < n and not q[i].isspace() and q[i] not in '()"':
                i += 1
            word = q[start:i]
            out.append(_Lexeme(word if word in OPERATORS else "word", word, start))
    return out


class _Parser:
    def __init__(self, lexemes: list[_Lexeme]):
        self.lexemes = lexemes
        self.pos = 0
        self.terms = 0

    def peek(self) -> _Lexeme | None:
        return self.lexemes[self.pos] if self.pos < len(self.lexemes) else None

    def take(self) -> _Lexeme:
        lexeme = self.lexemes[self.pos]
        self.pos += 1
        return lexeme

    def parse(self) -> Node:
        node = self.or_expr(0)
        extra = self.peek()
        if extra is not None:
            raise malformed(f"unexpected {extra.text!r} at character {extra.at + 1}")
        return node

    def or_expr(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise malformed(f"nested deeper than {MAX_DEPTH} levels")
        children = [self.and_expr(depth)]
        while (lexeme := self.peek()) is not None and lexeme.kind == "OR":
            self.take()
            children.append(self.and_expr(depth))
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self, depth: int) -> Node:
        children = [self.unary(depth)]
        while (lexeme := self.peek()) is not None and lexeme.kind not in ("OR", ")"):
            if lexeme.kind == "AND":
                self.take()
            children.append(self.unary(depth))
        return children[0] if len(children) == 1 else And(tuple(children))

    def unary(self, depth: int) -> Node:
        lexeme = self.peek()
        if lexeme is not None and lexeme.kind in ("NOT", "-"):
            self.take()
            return Not(self.unary(depth + 1))
        return self.primary(depth)

    def primary(self, depth: int) -> Node:
        lexeme = self.peek()
        if lexeme is None:
            raise malformed("ends where a word, a phrase or ( was expected")
        if lexeme.kind == "(":
            self.take()
            node = self.or_expr(depth + 1)
            closing = self.peek()
            if closing is None or closing.kind != ")":
                raise malformed(f"the ( at character {lexeme.at + 1} is not closed")
            self.take()
            return node
        if lexeme.kind in ("word", "phrase"):
            self.take()
            return self.term(lexeme)
        raise malformed(
            f"unexpected {lexeme.text!r} at character {lexeme.at + 1}: a word, a phrase "
            "or ( was expected"
        )

    def term(self, lexeme: _Lexeme) -> Term:
        found = tokens(lexeme.text)
        if not found:
            what = "phrase" if lexeme.kind == "phrase" else "word"
            raise malformed(
                f"the {what} {lexeme.text!r} at character {lexeme.at + 1} has no letters or "
                "digits to search for"
            )
        if len(found) > MAX_PHRASE_TOKENS:
            raise malformed(f"a phrase may hold at most {MAX_PHRASE_TOKENS} words")
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise malformed(f"more than {MAX_TERMS} words and phrases")
        return Term(tuple(found))


def parse_query(q: str) -> Node | None:
    """The query's tree, or None for an empty query (no text filter)."""
    lexemes = _lex(q)
    if not lexemes:
        return None
    return _Parser(lexemes).parse()
