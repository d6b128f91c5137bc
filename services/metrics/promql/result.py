"""A query's answer, and its rendering as the ``data`` object of Prometheus' HTTP API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .format import format_time, format_value
from .values import Ints, Matrix, Scalar, String, Value, Vector, label_key


def _sorted(labels: dict[str, str]) -> dict[str, str]:
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
            out = [
                {
                    "metric": _sorted(s.labels),
                    "values": [
                        [format_time(t), format_value(v)]
                        for t, v in zip(s.ts.tolist(), s.values.tolist(), strict=True)
                    ],
                }
                for s in value.series
                if len(s.ts)
            ]
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
                {"metric": _sorted(labels), "value": [t, format_value(v)]} for labels, v in rows
            ]
        times = [format_time(t) for t in self.steps_ms.tolist()]
        series = []
        for i in np.flatnonzero(value.present.any(axis=1)):
            cols = np.flatnonzero(value.present[i])
            vals = value.values[i, cols].tolist()
            series.append(
                {
                    "metric": _sorted(value.labels[i]),
                    "values": [
                        [times[c], format_value(v)]
                        for c, v in zip(cols.tolist(), vals, strict=True)
                    ],
                }
            )
        series.sort(key=_by_labels)
        return series
