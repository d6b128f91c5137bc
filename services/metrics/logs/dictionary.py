"""A compression dictionary learned from the store's own lines.

A log line is short (tens of bytes) and alone compresses to nothing; but lines repeat
their templates ("GET /api/v1/orders/… 200 …ms"). zlib takes a preset dictionary: a few
KB of earlier lines, against which each line is coded as back-references, so a
50-byte line takes ~15. The store learns one from the first lines it sees, keeps it
in its database (a line names the dictionary it was coded with, so the file can always
be read) and codes later lines against it. Every ``RELEARN_AFTER`` lines it learns
another from the lines of the moment, and keeps it if it codes them a tenth better:
what a system logs changes.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Iterable

DICT_BYTES = 4096  # larger dictionaries code a little better and cost more per line
LEARN_FROM = 2000  # lines seen before the dictionary is made
MIN_DICT_INPUT = 24  # shorter texts are stored as they are
RELEARN_AFTER = 1_000_000  # lines coded with one dictionary before a newer one is tried
MAX_DICTS = 255  # a dictionary's id is one byte
COMPARE_SAMPLES = 500  # texts coded with both dictionaries to compare them
DIGITS = re.compile(rb"[0-9a-f]{6,}|[0-9]+")

WITH_DICT = b"\x02"  # first byte of a text coded against a dictionary; then its id


def learn(samples: Iterable[bytes], size: int = DICT_BYTES) -> bytes:
    """The dictionary: one example of each frequent template (numbers and ids masked),
    least frequent first, as zlib finds the end of a dictionary cheapest to refer to."""
    counts: Counter[bytes] = Counter()
    example: dict[bytes, bytes] = {}
    for sample in samples:
        template = DIGITS.sub(b"0", sample)
        counts[template] += 1
        example.setdefault(template, sample)
    chosen: list[bytes] = []
    total = 0
    for template, _count in counts.most_common():
        text = example[template][:512]
        if total + len(text) + 1 > size:
            continue
        chosen.append(text)
        total += len(text) + 1
    return b"\n".join(reversed(chosen))


class Dictionaries:
    """The store's dictionaries by id; the newest codes new lines."""

    def __init__(self, relearn_after: int = RELEARN_AFTER) -> None:
        self.by_id: dict[int, bytes] = {}
        self.current: int | None = None
        self.samples: list[bytes] = []
        self.relearn_after = relearn_after
        self.coded_since = 0  # lines since the current dictionary was made or tried

    def due(self, lines: int) -> bool:
        """Whether the next write should bring samples to learn from."""
        if self.current is None:
            return True
        self.coded_since += lines
        return self.coded_since >= self.relearn_after and self.current < MAX_DICTS

    def add(self, dict_id: int, data: bytes) -> None:
        self.by_id[dict_id] = data
        if self.current is None or dict_id > self.current:
            self.current = dict_id

    def observe(self, texts: Iterable[bytes]) -> tuple[int, bytes] | None:
        """Collect lines until enough to learn from; then a new dictionary (id, data),
        which the caller stores with the lines and ``add``s once committed."""
        if self.current is None:
            self.samples.extend(t for t in texts if len(t) >= MIN_DICT_INPUT)
            if len(self.samples) < LEARN_FROM:
                return None
            data = learn(self.samples)
            self.samples = []
            return (1, data) if data else None
        self.coded_since = 0
        recent = [t for t in texts if len(t) >= MIN_DICT_INPUT]
        data = learn(recent)
        sample = recent[:: max(1, len(recent) // COMPARE_SAMPLES)]
        if not data or self.coded_size(sample, data) > 0.9 * self.coded_size(
            sample, self.by_id[self.current]
        ):
            return None
        return (self.current + 1, data)

    def coded_size(self, texts: list[bytes], zdict: bytes) -> int:
        return sum(len(self.encode(t, 0, zdict) or t) for t in texts)

    def encode(self, data: bytes, dict_id: int | None, zdict: bytes | None) -> bytes | None:
        """``data`` coded against the dictionary, or None when that saves nothing."""
        if zdict is None or dict_id is None or len(data) < MIN_DICT_INPUT:
            return None
        coder = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict)
        coded = WITH_DICT + bytes((dict_id,)) + coder.compress(data) + coder.flush()
        return coded if len(coded) < len(data) else None

    def decode(self, stored: bytes) -> bytes:
        zdict = self.by_id[stored[1]]
        return zlib.decompressobj(-15, zdict=zdict).decompress(stored[2:])
