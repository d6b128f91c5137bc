"""The log store's tables, on the metrics service's SQL database (prefix ``metrics_``).

- ``metrics_logs``: one row per line, keyed by its time-ordered id (``codec``).
- ``metrics_logs_sets``: each distinct (service, labels) once; a line refers to it.
- SQLite: ``metrics_logs_fts``, a contentless FTS5 index (the rows keep the compressed
  text; the index keeps only tokens and positions) whose rowid is the line's id. Its
  ``message`` column indexes the text; its ``meta`` column two tokens per line, ``l<level>``
  and ``s<label set>``, which answer level and label filters and per-level retention.
  FTS5 keeps a token's lines as delta-coded rowids, a byte or two a line, where a B-tree
  index on (level, id) took ~27 bytes a line and one on (label set, id) ~29.
- PostgreSQL: a ``tsvector`` column with a GIN index, and B-tree indexes on (level, id)
  and (label set, id).
- ``metrics_logs_dicts``: the compression dictionaries lines were coded with (``dictionary``).
- ``metrics_checkpoints``: the ``logs-store`` consumer's last applied stream sequence.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR

from shared.db import checkpoint_table

SERVICE = "metrics"
ENTRIES = "metrics_logs"
SETS = "metrics_logs_sets"
DICTS = "metrics_logs_dicts"
FTS = "metrics_logs_fts"

# SQLite makes a column declared exactly INTEGER PRIMARY KEY the rowid itself (no second
# index); on PostgreSQL the id needs 64 bits
RowId = BigInteger().with_variant(Integer(), "sqlite")

FTS_DDL = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS} USING fts5(message, meta, content='', "
    "columnsize=0, tokenize='unicode61 remove_diacritics 0')"
)


def meta_tokens(level: int, labelset: int) -> str:
    return f"l{level} s{labelset}"


def log_tables(postgres: bool) -> tuple[MetaData, Table, Table, Table]:
    """(metadata, lines, label sets, dictionaries) for one backend, with the checkpoints."""
    metadata = MetaData()
    columns: list[Column[object]] = [
        Column("id", RowId, primary_key=True, autoincrement=False),
        Column("level", SmallInteger, nullable=False),
        Column("labelset", Integer, nullable=False),
        Column("us", SmallInteger, nullable=False),
        Column("message", LargeBinary, nullable=False),
        Column("fields", LargeBinary),
        Column("trace_id", LargeBinary),
        Column("span_id", LargeBinary),
    ]
    indexes = []
    if postgres:
        columns.append(Column("tsv", TSVECTOR, nullable=False))
        indexes = [
            Index(f"{ENTRIES}_level", "level", "id"),
            Index(f"{ENTRIES}_labelset", "labelset", "id"),
            Index(f"{ENTRIES}_tsv", "tsv", postgresql_using="gin"),
        ]
    entries = Table(ENTRIES, metadata, *columns, *indexes)
    sets = Table(
        SETS,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("key", String(64), nullable=False, unique=True),
        Column("service", Text, nullable=False),
        Column("labels", Text, nullable=False),
    )
    dicts = Table(
        DICTS,
        metadata,
        Column("id", SmallInteger, primary_key=True, autoincrement=False),
        Column("data", LargeBinary, nullable=False),
    )
    checkpoint_table(metadata, SERVICE)
    return metadata, entries, sets, dicts
