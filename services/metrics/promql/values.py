"""What expressions evaluate to, over every step of a query at once.

An instant vector is a label set per row and two ``(rows, steps)`` arrays: the values and
whether a sample exists there. Keeping all steps together is what lets every operator run
as a handful of numpy calls instead of a Python loop per (series, step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .errors import EXECUTION, PromQLError

if TYPE_CHECKING:
    from .windows import Flat

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Labels = dict[str, str]
LabelKey = tuple[tuple[str, str], ...]

METRIC_NAME = "__name__"


def label_key(labels: Labels) -> LabelKey:
    return tuple(sorted(labels.items()))


def drop_name(labels: Labels) -> Labels:
    return {k: v for k, v in labels.items() if k != METRIC_NAME}


@dataclass
class Scalar:
    values: Floats  # (steps,)


@dataclass
class String:
    value: str


@dataclass
class Vector:
    labels: list[Labels]
    values: Floats  # (rows, steps)
    present: Bools  # (rows, steps)
    # Sample timestamps (ms) of a plain selector, for timestamp(); None elsewhere.
    sample_ts: Ints | None = None

    @staticmethod
    def empty(steps: int) -> Vector:
        return Vector([], np.zeros((0, steps)), np.zeros((0, steps), dtype=bool))

    def __len__(self) -> int:
        return len(self.labels)

    def with_labels(self, labels: list[Labels]) -> Vector:
        """Same samples under new label sets; rows that now share a label set are merged,
        and two of them holding a sample at one step is Prometheus' duplicate error."""
        return dedupe(Vector(labels, self.values, self.present))


@dataclass
class Matrix:
    """A range vector: each series' raw samples (laid end to end, see ``windows.Flat``)
    and the reference time of each step."""

    labels: list[Labels]
    flat: Flat
    ref_ms: Ints  # (steps,)
    range_ms: int
    # Equality matchers of the selector, for absent_over_time().
    absent_labels: Labels = field(default_factory=dict)
    # Per series: its points are rollup buckets (see SeriesData.resolution_ms).
    rolled_up: Bools | None = None


Value = Scalar | String | Vector | Matrix


def dedupe(vec: Vector) -> Vector:
    """Merge rows with identical label sets; overlapping samples are an error."""
    index: dict[LabelKey, int] = {}
    groups: list[list[int]] = []
    for row, labels in enumerate(vec.labels):
        key = label_key(labels)
        at = index.get(key)
        if at is None:
            index[key] = len(groups)
            groups.append([row])
        else:
            groups[at].append(row)
    if len(groups) == len(vec.labels):
        return vec
    labels_out: list[Labels] = []
    values = np.empty((len(groups), vec.values.shape[1]))
    present = np.zeros((len(groups), vec.values.shape[1]), dtype=bool)
    for g, rows in enumerate(groups):
        labels_out.append(vec.labels[rows[0]])
        if len(rows) == 1:
            values[g] = vec.values[rows[0]]
            present[g] = vec.present[rows[0]]
            continue
        counts = vec.present[rows].sum(axis=0)
        if (counts > 1).any():
            raise PromQLError(EXECUTION, "vector cannot contain metrics with the same labelset")
        values[g] = np.where(vec.present[rows], vec.values[rows], 0.0).sum(axis=0)
        present[g] = counts > 0
    return Vector(labels_out, values, present)
