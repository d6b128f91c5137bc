"""A query's answer, and its rendering as the ``data`` object of Prometheus' HTTP API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .format import format_time, format_value, format_values
from .values import Ints, Matrix, Scalar, String, Value, Vector, label_key


def sorted_labels(labels: dict[str, str]) -> dict[str, str]:
    """Labels in name order, as Prometheus prints them."""
    return dict(sorted(labels.items()))


def _by_labels(item: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return label_key(item["metric"])


@dataclass
class Result:
    """``value`` evaluated at ``steps_ms``; ``instant`` picks vector vs matrix shapes.
    ``keep_order`` keeps the row order of sort()/topk() in an instant vector."""

    value: Value
    steps_ms: Ints
    instant: bool
    keep_order: bool = False

    @property
    def result_type(self) -> str:
        if isinstance(self.value, Matrix) or not self.instant:
            return "matrix"
        if isinstance(self.value, Vector):
            return "vector"
        if isinstance(self.value, Scalar):
            return "scalar"
        return "string"

    def to_prometheus(self) -> dict[str, Any]:
        return {"resultType": self.result_type, "result": self._result()}

    def _result(self) -> Any:
        value = self.value
        if isinstance(value, Matrix):
            flat = value.flat
            out = []
            for i, labels in enumerate(value.labels):
                lo, hi = int(flat.starts[i]), int(flat.starts[i + 1])
                if hi == lo:
                    continue
                ts = [format_time(t) for t in flat.ts[lo:hi].tolist()]
                texts = format_values(flat.values[lo:hi])
                points = [[t, text] for t, text in zip(ts, texts, strict=True)]
                out.append({"metric": sorted_labels(labels), "values": points})
            out.sort(key=_by_labels)
            return out
        if isinstance(value, String):
            return [format_time(int(self.steps_ms[0])), value.value]
        if isinstance(value, Scalar):
            if self.instant:
                return [format_time(int(self.steps_ms[0])), format_value(float(value.values[0]))]
            steps = self.steps_ms.tolist()
            return [
                {
                    "metric": {},
                    "values": [
                        [format_time(t), format_value(v)]
                        for t, v in zip(steps, value.values.tolist(), strict=True)
                    ],
                }
            ]
        if self.instant:
            t = format_time(int(self.steps_ms[0]))
            rows = [
                (value.labels[i], float(value.values[i, 0]))
                for i in np.flatnonzero(value.present[:, 0])
            ]
            if not self.keep_order:
                rows.sort(key=lambda row: label_key(row[0]))
            return [
                {"metric": sorted_labels(labels), "value": [t, format_value(v)]}
                for labels, v in rows
            ]
        times = [format_time(t) for t in self.steps_ms.tolist()]
        series = []
        full: list[bool] = np.all(value.present, axis=1).tolist()
        for i in np.flatnonzero(value.present.any(axis=1)).tolist():
            if full[i]:
                at, texts = times, format_values(value.values[i])
            else:
                cols = np.flatnonzero(value.present[i])
                at, texts = [times[c] for c in cols.tolist()], format_values(value.values[i, cols])
            points = [[t, text] for t, text in zip(at, texts, strict=True)]
            series.append({"metric": sorted_labels(value.labels[i]), "values": points})
        series.sort(key=_by_labels)
        return series
