"""The dictionary of label sets: each distinct (service, labels) stored once, held in memory.

Lines refer to their set by a small integer, so a service name and its labels cost a
few bytes per line; a filter on service or labels becomes the list of matching set
ids, resolved here without touching the lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class LabelSet:
    id: int
    service: str
    labels: dict[str, str]


def set_key(service: str, labels: Mapping[str, str]) -> str:
    canonical = orjson.dumps([service, sorted(labels.items())])
    return hashlib.sha256(canonical).hexdigest()


def encode_labels(labels: Mapping[str, str]) -> str:
    return orjson.dumps(dict(sorted(labels.items()))).decode()


class LabelSets:
    """Every known set by key and by id; only committed sets are added."""

    def __init__(self) -> None:
        self.by_key: dict[str, int] = {}
        self.by_id: dict[int, LabelSet] = {}
        # (service, *label items) as they came, in their order: a line's set found
        # without hashing its canonical form
        self.by_items: dict[tuple[str, ...], int] = {}

    def add(self, key: str, found: LabelSet) -> None:
        self.by_key[key] = found.id
        self.by_id[found.id] = found

    def add_all(self, found: Iterable[tuple[str, LabelSet]]) -> None:
        for key, labelset in found:
            self.add(key, labelset)

    def matching(self, services: list[str], labels: Mapping[str, str]) -> list[int] | None:
        """Ids of the sets a filter admits; None when the filter admits every set."""
        if not services and not labels:
            return None
        wanted = set(services)
        return sorted(
            s.id
            for s in self.by_id.values()
            if (not wanted or s.service in wanted)
            and all(s.labels.get(k) == v for k, v in labels.items())
        )
