"""How a log line is kept in a row: compact bytes for the message and its fields, the time
in the row id.

- The id is the time: ``milliseconds << 20 | n``, n counting lines of the same
  millisecond. Ordering by id is newest-first by time, a cursor is one id, and both
  SQLite FTS5 (rowid) and the primary key walk it directly. The microseconds within the
  millisecond are kept in their own small column.
- A message is its UTF-8 bytes; a long one (``COMPRESS_FROM`` bytes or more) is
  zlib-compressed when that saves a tenth, marked by a leading 0x01 byte, which no
  stored message can start with (control characters are refused at ingest).
- Fields are compact JSON, compressed the same way; trace and span ids are their raw
  16 and 8 bytes.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

ID_SHIFT = 20
PER_MS = 1 << ID_SHIFT  # lines of one millisecond at most
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


def pack(data: bytes) -> bytes:
    if len(data) >= COMPRESS_FROM:
        packed = COMPRESSED + zlib.compress(data, ZLIB_LEVEL)
        if len(packed) * 10 <= len(data) * 9:
            return packed
    return data


def unpack(stored: bytes) -> bytes:
    if stored[:1] == COMPRESSED:
        return zlib.decompress(stored[1:])
    return stored


def encode_message(message: str) -> bytes:
    return pack(message.encode())


def decode_message(stored: bytes) -> str:
    return unpack(bytes(stored)).decode()


def encode_fields(fields: dict[str, Any]) -> bytes | None:
    return pack(orjson.dumps(fields)) if fields else None


def decode_fields(stored: bytes | None) -> dict[str, Any]:
    if not stored:
        return {}
    decoded: dict[str, Any] = orjson.loads(unpack(bytes(stored)))
    return decoded


def encode_hex(value: str | None) -> bytes | None:
    return bytes.fromhex(value) if value else None


def decode_hex(stored: bytes | None) -> str | None:
    return bytes(stored).hex() if stored else None
