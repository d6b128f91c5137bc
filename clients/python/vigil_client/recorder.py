"""What the request path records: an interval's counts and durations, in bounded memory.

Recording takes a lock for a few dictionary updates and nothing else: no I/O, no
allocation that grows with traffic. The pusher's thread swaps the interval out whole.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from vigil_client.labels import BoundedValues, printable
from vigil_client.sketch import LatencySketch

NOT_FOUND = "__not_found__"
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD = "OTHER"
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

RequestKey = tuple[str, str, str]  # route, method, status class


@dataclass
class Timings:
    """Count, failures and durations of one route or one named query in an interval."""

    count: int = 0
    errors: int = 0
    latency: LatencySketch = field(default_factory=LatencySketch)


@dataclass
class Interval:
    """Everything recorded between two flushes."""

    requests: dict[RequestKey, int] = field(default_factory=dict)
    routes: dict[str, Timings] = field(default_factory=dict)
    queries: dict[str, Timings] = field(default_factory=dict)
    caches: dict[str, list[int]] = field(default_factory=dict)  # name -> [hits, misses]


def status_class(status: int) -> str:
    return STATUS_CLASSES[status // 100 - 1] if 100 <= status < 600 else "5xx"


class Recorder:
    """Per-route requests, errors and latency; per-name query times and cache lookups.

    The number of routes, query names and cache names is bounded (``max_routes``,
    ``max_names``): new ones past the bound are counted under ``__overflow__``, so memory
    and series stay bounded whatever paths clients request.
    """

    def __init__(self, max_routes: int = 100, max_names: int = 100) -> None:
        self.routes = BoundedValues(max_routes)
        self.query_names = BoundedValues(max_names)
        self.cache_names = BoundedValues(max_names)
        self._lock = threading.Lock()
        self._interval = Interval()

    def route_label(self, template: str | None, path: str, status: int) -> str:
        """The framework's route template when there is one; else the raw path, bounded.

        A 404 without a template is one label: scanners probing random paths would
        otherwise use up every route slot.
        """
        if template:
            return self.routes.admit(printable(template))
        if status == 404:
            return NOT_FOUND
        return self.routes.admit(printable(path or "/"))

    def request(
        self, route: str, method: str, status: int, duration_s: float, failed: bool
    ) -> None:
        method = method if method in METHODS else OTHER_METHOD
        key = (route, method, status_class(status))
        error = failed or status >= 500
        with self._lock:
            requests = self._interval.requests
            requests[key] = requests.get(key, 0) + 1
            timings = self._interval.routes.get(route)
            if timings is None:
                timings = self._interval.routes[route] = Timings()
            timings.count += 1
            timings.errors += error
            timings.latency.add(duration_s * 1000.0)

    def query(self, name: str, duration_s: float, failed: bool) -> None:
        name = self.query_names.admit(printable(name))
        with self._lock:
            timings = self._interval.queries.get(name)
            if timings is None:
                timings = self._interval.queries[name] = Timings()
            timings.count += 1
            timings.errors += failed
            timings.latency.add(duration_s * 1000.0)

    def cache(self, name: str, hit: bool) -> None:
        name = self.cache_names.admit(printable(name))
        with self._lock:
            counts = self._interval.caches.get(name)
            if counts is None:
                counts = self._interval.caches[name] = [0, 0]
            counts[0 if hit else 1] += 1

    def take(self) -> Interval:
        """The interval so far; recording goes on into a fresh one."""
        with self._lock:
            interval, self._interval = self._interval, Interval()
        return interval
