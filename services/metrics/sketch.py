"""A mergeable quantile sketch in SQL: log-spaced buckets, DDSketch-style.

A value maps to an integer key whose bucket spans a ratio ``GAMMA``; any quantile read
back from the key counts is within ``RELATIVE_ACCURACY`` of the true value. Keys and
counts merge by adding counts per key, so rollups of any resolution combine, and so do
series. Keys are ordered like the values: negatives below zero's key 0, positives above.
"""

from __future__ import annotations

import math

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LN_GAMMA = math.log(GAMMA)
OFFSET = 100_000  # larger than |ceil(ln(v) / ln(GAMMA))| for any finite double
SMALLEST = 1e-300  # nearer zero than this counts as zero


def key_sql(value: str) -> str:
    """The SQL expression of ``value``'s key; NULL for NaN and infinities."""
    return (
        f"CASE WHEN NOT isfinite({value}) THEN NULL "
        f"WHEN {value} > {SMALLEST} "
        f"THEN {OFFSET} + CAST(ceil(ln({value}) / {LN_GAMMA}) AS INTEGER) "
        f"WHEN {value} < -{SMALLEST} "
        f"THEN -({OFFSET} + CAST(ceil(ln(-{value}) / {LN_GAMMA}) AS INTEGER)) "
        "ELSE 0 END"
    )


def value_sql(key: str) -> str:
    """The SQL expression of the value a key stands for (its bucket's midpoint in ratio)."""
    scale = 2 / (GAMMA + 1)
    return (
        f"CASE WHEN {key} > 0 THEN {scale} * pow({GAMMA}, {key} - {OFFSET}) "
        f"WHEN {key} < 0 THEN -{scale} * pow({GAMMA}, -{key} - {OFFSET}) ELSE 0.0 END"
    )


def key_of(value: float) -> int | None:
    """``key_sql`` in Python, for tests and callers that hold values in hand."""
    if not math.isfinite(value):
        return None
    if value > SMALLEST:
        return OFFSET + math.ceil(math.log(value) / LN_GAMMA)
    if value < -SMALLEST:
        return -(OFFSET + math.ceil(math.log(-value) / LN_GAMMA))
    return 0


def value_of(key: int) -> float:
    scale = 2 / (GAMMA + 1)
    if key > 0:
        return float(scale * GAMMA ** (key - OFFSET))
    if key < 0:
        return float(-scale * GAMMA ** (-key - OFFSET))
    return 0.0
