"""Prometheus text (0.0.4) and OpenMetrics bodies into Vigil samples; free of I/O.

Parsing is ``prometheus_client``'s (escapes, timestamps, ``# EOF``, every metric type);
this module only maps its samples onto Vigil's bounds: label values made printable, and
what Vigil cannot store (NaN or infinite values, names it refuses) counted and left out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import parser as text_parser
from prometheus_client.openmetrics import parser as openmetrics_parser

from shared.events import Sample
from shared.events.metrics import MAX_METRIC_NAME_CHARS, METRIC_NAME_PATTERN
from shared.labels import LABEL_NAME_PATTERN, MAX_LABELS, printable

ACCEPT = "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
_METRIC_NAME = re.compile(METRIC_NAME_PATTERN)
_LABEL_NAME = re.compile(LABEL_NAME_PATTERN)


@dataclass
class Parsed:
    samples: list[Sample] = field(default_factory=list)
    dropped_by_relabel: int = 0
    skipped: int = 0  # values or names Vigil cannot store


def is_openmetrics(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "application/openmetrics-text"


def parse_exposition(
    text: str,
    content_type: str,
    target_labels: dict[str, str],
    keeps: Callable[[str], bool],
    now: float,
) -> Parsed:
    """Every sample of the body with ``target_labels`` (job, instance, the config's) added.

    A label the target sets itself that clashes with a target label is kept as
    ``exported_<name>``, as Prometheus does without ``honor_labels``. A sample without a
    timestamp is stamped ``now``, the scrape's start. Raises ``ValueError`` for a body
    that is not the format.
    """
    parser = (
        openmetrics_parser.text_string_to_metric_families
        if is_openmetrics(content_type)
        else text_parser.text_string_to_metric_families
    )
    parsed = Parsed()
    for family in parser(text):
        for raw in family.samples:
            name = raw.name
            if not keeps(name):
                parsed.dropped_by_relabel += 1
                continue
            value = float(raw.value)
            if not math.isfinite(value) or len(name) > MAX_METRIC_NAME_CHARS:
                parsed.skipped += 1
                continue
            if not _METRIC_NAME.match(name):
                parsed.skipped += 1
                continue
            labels = _labels(raw.labels.items(), target_labels)
            if labels is None:
                parsed.skipped += 1
                continue
            stamp = now if raw.timestamp is None else float(raw.timestamp)
            parsed.samples.append(
                {"name": name, "value": value, "timestamp": stamp, "labels": labels}
            )
    return parsed


def _labels(own: Iterable[tuple[str, str]], target_labels: dict[str, str]) -> dict[str, str] | None:
    labels: dict[str, str] = {}
    for name, value in own:
        key = f"exported_{name}" if name in target_labels else name
        if not _LABEL_NAME.match(key):
            return None
        labels[key] = printable(value)
    labels.update(target_labels)
    return labels if len(labels) <= MAX_LABELS else None
