"""How a log line is kept in a row: compact bytes for the message and its fields, the time
in the row id.

- The id is the time: ``milliseconds << 14 | n``, n counting lines of the same
  millisecond. Ordering by id is newest-first by time, a cursor is one id, and both
  SQLite FTS5 (rowid) and the primary key walk it directly. The microseconds within the
  millisecond are kept in their own small column. 14 bits hold a whole batch stamped on
  arrival (10,000 lines) in its millisecond; a line beyond 16,384 in one millisecond
  moves to the next. Not more bits: FTS5 codes each token's lines as rowid deltas, so
  every spare bit costs index bytes (20 bits cost ~20 bytes a line more than 12).
- A message is coded against the store's learned dictionary (``dictionary``: 0x02, the
  dictionary's id, raw deflate), or zlib-compressed alone when long (0x01), or kept as
  its UTF-8 bytes, whichever is shortest. No stored message can start with 0x01 or 0x02:
  control characters are refused at ingest.
- Fields are compact JSON, coded the same way; trace and span ids are their raw 16 and
  8 bytes.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from services.metrics.logs.dictionary import WITH_DICT, Dictionaries

ID_SHIFT = 14
PER_MS = 1 << ID_SHIFT  # lines of one millisecond at most (more move to the next one)
COMPRESS_FROM = 200
ZLIB_LEVEL = 6
COMPRESSED = b"\x01"

LEVELS: tuple[str, ...] = ("trace", "debug", "info", "warn", "error", "fatal")
LEVEL_CODE = {name: code for code, name in enumerate(LEVELS)}


def split_time(timestamp: float) -> tuple[int, int]:
    """(milliseconds, microseconds within them) of a Unix time in seconds."""
    us = round(timestamp * 1_000_000)
    return us // 1000, us % 1000


def joined_time(row_id: int, us: int) -> float:
    return ((row_id >> ID_SHIFT) * 1000 + us) / 1_000_000


def first_id(ms: int) -> int:
    return ms << ID_SHIFT


def id_at(timestamp: float) -> int:
    """The smallest id of a line stamped at or after ``timestamp``."""
    ms, us = split_time(timestamp)
    return first_id(ms + (1 if us else 0))


class Coder:
    """Packs texts with the store's dictionaries and unpacks whatever a row holds."""

    def __init__(self, dictionaries: Dictionaries | None = None):
        self.dictionaries = dictionaries if dictionaries is not None else Dictionaries()

    def pack(self, data: bytes, dict_id: int | None = None) -> bytes:
        best = data
        zdict = self.dictionaries.by_id.get(dict_id) if dict_id is not None else None
        coded = self.dictionaries.encode(data, dict_id, zdict)
        if coded is not None:
            best = coded
        if len(data) >= COMPRESS_FROM:
            alone = COMPRESSED + zlib.compress(data, ZLIB_LEVEL)
            if len(alone) < len(best) and len(alone) * 10 <= len(data) * 9:
                best = alone
        return best

    def unpack(self, stored: bytes) -> bytes:
        head = stored[:1]
        if head == COMPRESSED:
            return zlib.decompress(stored[1:])
        if head == WITH_DICT:
            return self.dictionaries.decode(stored)
        return stored

    def encode_message(self, message: str, dict_id: int | None = None) -> bytes:
        return self.pack(message.encode(), dict_id)

    def decode_message(self, stored: bytes) -> str:
        return self.unpack(bytes(stored)).decode()

    def encode_fields(self, fields: dict[str, Any], dict_id: int | None = None) -> bytes | None:
        return self.pack(orjson.dumps(fields), dict_id) if fields else None

    def decode_fields(self, stored: bytes | None) -> dict[str, Any]:
        if not stored:
            return {}
        decoded: dict[str, Any] = orjson.loads(self.unpack(bytes(stored)))
        return decoded


def encode_hex(value: str | None) -> bytes | None:
    return bytes.fromhex(value) if value else None


def decode_hex(stored: bytes | None) -> str | None:
    return bytes(stored).hex() if stored else None
