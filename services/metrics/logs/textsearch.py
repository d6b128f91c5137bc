"""A parsed text query (``shared.logquery``) in each engine's own syntax.

Only normalised tokens (letters and digits) are written into either syntax, each one
quoted, so nothing a user types can act as an operator of FTS5 or tsquery.
"""

from __future__ import annotations

from shared.logquery import And, Node, Not, Or, Term


def fts5(node: Node) -> str | None:
    """The FTS5 MATCH expression, or None where FTS5 cannot say it alone: its NOT is
    binary (``a NOT b``), so a negation needs something positive beside it."""
    if isinstance(node, Term):
        return '"' + " ".join(node.tokens) + '"'
    if isinstance(node, Or):
        parts = [fts5(child) for child in node.children]
        if any(part is None for part in parts):
            return None
        return "(" + " OR ".join(p for p in parts if p is not None) + ")"
    if isinstance(node, And):
        positive = [c for c in node.children if not isinstance(c, Not)]
        negative = [c.child for c in node.children if isinstance(c, Not)]
        if not positive:
            return None
        parts = [fts5(child) for child in positive]
        if any(part is None for part in parts):
            return None
        expression = "(" + " AND ".join(p for p in parts if p is not None) + ")"
        if negative:
            excluded = fts5(negative[0] if len(negative) == 1 else Or(tuple(negative)))
            if excluded is None:
                return None
            expression = f"({expression} NOT {excluded})"
        return expression
    return None  # a lone NOT


def tsquery(node: Node) -> str:
    """The PostgreSQL tsquery text (for ``to_tsquery('simple', ...)``): phrases with
    ``<->``, every lexeme quoted."""
    if isinstance(node, Term):
        lexemes = [f"'{token}'" for token in node.tokens]
        return lexemes[0] if len(lexemes) == 1 else "(" + " <-> ".join(lexemes) + ")"
    if isinstance(node, And):
        return "(" + " & ".join(tsquery(child) for child in node.children) + ")"
    if isinstance(node, Or):
        return "(" + " | ".join(tsquery(child) for child in node.children) + ")"
    return f"!({tsquery(node.child)})"
