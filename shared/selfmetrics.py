"""A service's own figures in the Prometheus text format (0.0.4), so Vigil can be
watched by Vigil and by Prometheus.

A tiny registry rather than a client library: three kinds (counter, gauge, histogram),
labels, and one renderer. Each service process has one (``REGISTRY``); the consumer
machinery, the gateway's HTTP middleware and the services record into it, and the
service answers ``vigil.query.selfmetrics.<service>`` with the rendered text.
"""

from __future__ import annotations

import math
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence

import psutil

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# seconds: a consumer's handling or an HTTP request, from a fast ack to a slow page
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

LabelValues = tuple[str, ...]


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Family(ABC):
    kind = ""

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()):
        self.name = name
        self.help = help
        self.label_names = tuple(labels)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {tuple(labels)}")
        return tuple(str(labels[n]) for n in self.label_names)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]

    @abstractmethod
    def lines(self) -> list[str]:
        """The family's sample lines in the exposition format."""


class Counter(_Family):
    """Only goes up; exposed as ``<name>`` which must end in ``_total``."""

    kind = "counter"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()):
        if not name.endswith("_total"):
            raise ValueError(f"counter {name} must end in _total")
        super().__init__(name, help, labels)
        self._values: dict[LabelValues, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]


class Gauge(_Family):
    """A value that goes up and down; set, or read from ``source`` at render time."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        source: Callable[[], Iterable[tuple[dict[str, str], float]]] | None = None,
    ):
        super().__init__(name, help, labels)
        self._values: dict[LabelValues, float] = {}
        self._source = source

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def lines(self) -> list[str]:
        with self._lock:
            values = dict(self._values)
        if self._source is not None:
            for labels, value in self._source():
                values[self._key(labels)] = float(value)
        return [
            f"{self.name}{_labels(self.label_names, k)} {_number(v)}"
            for k, v in sorted(values.items())
        ]


class Histogram(_Family):
    """Cumulative buckets (``_bucket{le=...}``), ``_sum`` and ``_count``."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ):
        super().__init__(name, help, labels)
        self.buckets = tuple(sorted(buckets))
        # per label set: counts per bucket (non-cumulative, last is +Inf), sum
        self._values: dict[LabelValues, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            counts, total = self._values.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0]))
            index = len(self.buckets)
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    index = i
                    break
            counts[index] += 1
            total[0] += value

    def count(self, **labels: str) -> int:
        found = self._values.get(self._key(labels))
        return sum(found[0]) if found else 0

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted((k, (list(c), s[0])) for k, (c, s) in self._values.items())
        out: list[str] = []
        for key, (counts, total) in items:
            running = 0
            for bound, n in zip((*self.buckets, math.inf), counts, strict=True):
                running += n
                le = f'le="{_number(bound)}"'
                out.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {running}")
            out.append(f"{self.name}_sum{_labels(self.label_names, key)} {_number(total)}")
            out.append(f"{self.name}_count{_labels(self.label_names, key)} {running}")
        return out


class Registry:
    """The families of one process, rendered in the order they were made."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}
        self._lock = threading.Lock()

    def _add(self, family: _Family) -> _Family:
        with self._lock:
            existing = self._families.get(family.name)
            if existing is not None:
                if type(existing) is not type(family) or existing.label_names != family.label_names:
                    raise ValueError(f"{family.name} is already registered differently")
                return existing
            self._families[family.name] = family
            return family

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        family = self._add(Counter(name, help, labels))
        assert isinstance(family, Counter)
        return family

    def gauge(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        source: Callable[[], Iterable[tuple[dict[str, str], float]]] | None = None,
    ) -> Gauge:
        family = self._add(Gauge(name, help, labels, source))
        assert isinstance(family, Gauge)
        return family

    def histogram(
        self,
        name: str,
        help: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        family = self._add(Histogram(name, help, labels, buckets))
        assert isinstance(family, Histogram)
        return family

    def render(self) -> str:
        with self._lock:
            families = list(self._families.values())
        lines: list[str] = []
        for family in families:
            lines += family.header()
            lines += family.lines()
        return "".join(f"{line}\n" for line in lines)


def process_families(registry: Registry) -> None:
    """CPU seconds, resident memory, open file descriptors and start time of this process,
    read when rendered (the names Prometheus's own clients use)."""
    process = psutil.Process(os.getpid())

    def cpu() -> list[tuple[dict[str, str], float]]:
        times = process.cpu_times()
        return [({}, times.user + times.system)]

    def fds() -> list[tuple[dict[str, str], float]]:
        try:
            return [({}, float(process.num_fds()))]
        except (AttributeError, psutil.Error):
            return []

    registry._add(
        _ReadCounter(
            "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", cpu
        )
    )
    registry.gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        source=lambda: [({}, float(process.memory_info().rss))],
    )
    registry.gauge("process_open_fds", "Number of open file descriptors.", source=fds)
    registry.gauge(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch in seconds.",
        source=lambda: [({}, process.create_time())],
    )


def exposition(service: str, *registries: Registry) -> str:
    """What ``/metrics`` shows for ``service``: which it is, its process's figures (the
    shared registry) and those of its own objects (``registries``)."""
    info = Gauge("vigil_service_info", "The Vigil service answering (always 1).", ("service",))
    info.set(1.0, service=service)
    parts = [*info.header(), *info.lines()]
    return "\n".join(parts) + "\n" + "".join(r.render() for r in registries or (REGISTRY,))


class _ReadCounter(Counter):
    """A counter whose value is read from the system when rendered."""

    def __init__(
        self, name: str, help: str, source: Callable[[], list[tuple[dict[str, str], float]]]
    ):
        super().__init__(name, help)
        self._source = source

    def lines(self) -> list[str]:
        return [f"{self.name} {_number(v)}" for _, v in self._source()]


REGISTRY = Registry()
process_families(REGISTRY)

# --- what every service's consumers record ------------------------------------------

CONSUMER_MESSAGES = REGISTRY.counter(
    "vigil_consumer_messages_total",
    "Messages a durable consumer handled, by outcome (ok, failed: redelivered later).",
    labels=("consumer", "outcome"),
)
CONSUMER_DEAD_LETTERED = REGISTRY.counter(
    "vigil_consumer_dead_lettered_total",
    "Messages a durable consumer gave up on and recorded as dead letters.",
    labels=("consumer",),
)
CONSUMER_SECONDS = REGISTRY.histogram(
    "vigil_consumer_handling_seconds",
    "Time to handle one message (or one batch of a batched consumer).",
    labels=("consumer",),
)
