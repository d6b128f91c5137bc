"""A strict reader of the Prometheus text exposition format 0.0.4, for tests.

Every line must be a ``# HELP``, a ``# TYPE`` or a sample of the family announced just
before it; names, label syntax, escapes and numbers are checked, counters end in
``_total``, histograms have cumulative ``_bucket`` series ending in ``le="+Inf"`` equal
to ``_count``. Returns ``{family: {"type", "help", "samples": {(name, labels): value}}}``.
"""

from __future__ import annotations

import math
import re
from typing import Any

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(rf"^({NAME})(\{{(?:{LABEL})(?:,{LABEL})*\}}|\{{\}})? (\S+)(?: (-?\d+))?$")
LABEL_RE = re.compile(LABEL)
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("",), "gauge": ("",)}

Labels = tuple[tuple[str, str], ...]


def _value(text: str) -> float:
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", text):
        raise ValueError(f"not a number: {text!r}")
    return float(text)


def parse(text: str) -> dict[str, dict[str, Any]]:
    if not text.endswith("\n"):
        raise ValueError("the exposition must end with a newline")
    families: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        where = f"line {number}: {line!r}"
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            if not re.fullmatch(NAME, name) or name in families:
                raise ValueError(f"{where}: bad or repeated family")
            families[name] = {"help": line.split(" ", 3)[3], "type": None, "samples": {}}
            current = name
        elif line.startswith("# TYPE "):
            parts = line.split(" ")
            if len(parts) != 4 or parts[2] != current or parts[3] not in SUFFIXES:
                raise ValueError(f"{where}: TYPE must follow its HELP with a known type")
            if families[current]["samples"]:
                raise ValueError(f"{where}: TYPE after samples")
            if parts[3] == "counter" and not current.endswith("_total"):
                raise ValueError(f"{where}: a counter's name ends in _total")
            families[current]["type"] = parts[3]
        elif line.startswith("#") or not line:
            raise ValueError(f"{where}: stray comment or blank line")
        else:
            match = SAMPLE.match(line)
            if match is None or current is None or families[current]["type"] is None:
                raise ValueError(f"{where}: not a sample of an announced family")
            name = match.group(1)
            kind = families[current]["type"]
            if name not in {current + s for s in SUFFIXES[kind]}:
                raise ValueError(f"{where}: {name} is not part of {current} ({kind})")
            labels: Labels = tuple(LABEL_RE.findall(match.group(2) or ""))
            if len({k for k, _ in labels}) != len(labels):
                raise ValueError(f"{where}: repeated label")
            key = (name, labels)
            if key in families[current]["samples"]:
                raise ValueError(f"{where}: repeated series")
            families[current]["samples"][key] = _value(match.group(7))
    for name, family in families.items():
        if family["type"] is None:
            raise ValueError(f"{name}: HELP without TYPE")
        if family["type"] == "histogram":
            _check_histogram(name, family["samples"])
    return families


def _check_histogram(name: str, samples: dict[tuple[str, Labels], float]) -> None:
    series: dict[Labels, list[tuple[float, float]]] = {}
    for (sample, labels), value in samples.items():
        if sample == f"{name}_bucket":
            rest = tuple(kv for kv in labels if kv[0] != "le")
            le = dict(labels)["le"]
            series.setdefault(rest, []).append((_value(le), value))
    for rest, buckets in series.items():
        bounds = [b for b, _ in buckets]
        counts = [c for _, c in buckets]
        if bounds != sorted(bounds) or bounds[-1] != math.inf:
            raise ValueError(f"{name}{rest}: buckets not ascending to +Inf")
        if counts != sorted(counts):
            raise ValueError(f"{name}{rest}: buckets not cumulative")
        if samples.get((f"{name}_count", rest)) != counts[-1]:
            raise ValueError(f"{name}{rest}: _count differs from the +Inf bucket")
        if (f"{name}_sum", rest) not in samples:
            raise ValueError(f"{name}{rest}: no _sum")


def value(families: dict[str, dict[str, Any]], sample: str, **labels: str) -> float:
    """The value of one series (0 when absent: a counter not yet moved)."""
    for family in families.values():
        for (name, found), v in family["samples"].items():
            if name == sample and dict(found) == labels:
                return float(v)
    return 0.0
