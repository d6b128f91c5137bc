"""An interval turned into Vigil samples: counters run on, gauges describe the interval.

Counters (``*_total``, ``*_count``, ``*_sum``) are cumulative since the process started,
as Prometheus counters are, so ``rate()`` and ``increase()`` work on them. The gauges the
default rules watch are computed per interval: ``app_error_rate_percent`` is the share of
the interval's requests that failed, ``app_response_time_ms`` the interval's p95 (by
default) request duration.
"""

from __future__ import annotations

import math
from typing import Any

from vigil_client.recorder import Interval, RequestKey, Timings

Sample = dict[str, Any]
QUANTILES = (0.5, 0.9, 0.95, 0.99)


class SampleFolder:
    """Keeps the running counters and folds each interval into a list of samples."""

    def __init__(self, labels: dict[str, str], response_time_quantile: float = 0.95) -> None:
        self.labels = labels
        self.response_time_quantile = response_time_quantile
        self.requests_total: dict[RequestKey, int] = {}
        self.errors_total: dict[str, int] = {}
        self.duration_count: dict[str, int] = {}
        self.duration_sum: dict[str, float] = {}
        self.queries_total: dict[str, int] = {}
        self.query_errors_total: dict[str, int] = {}
        self.cache_hits: dict[str, int] = {}
        self.cache_misses: dict[str, int] = {}
        self._busy_routes: set[str] = set()

    def fold(self, interval: Interval, now: float, dropped_samples: int = 0) -> list[Sample]:
        out: list[Sample] = []

        def add(name: str, value: float, **labels: str) -> None:
            if math.isfinite(value):
                out.append(
                    {"name": name, "value": value, "timestamp": now, "labels": self.labels | labels}
                )

        for key, count in interval.requests.items():
            self.requests_total[key] = self.requests_total.get(key, 0) + count
        for (route, method, status), total in self.requests_total.items():
            add("app_requests_total", total, route=route, method=method, status_class=status)
        self._fold_routes(interval.routes, add)
        self._fold_queries(interval.queries, add)
        self._fold_caches(interval.caches, add)
        add("vigil_client_dropped_samples_total", dropped_samples)
        return out

    def _fold_routes(self, routes: dict[str, Timings], add: Any) -> None:
        for route, timings in routes.items():
            self.errors_total[route] = self.errors_total.get(route, 0) + timings.errors
            self.duration_count[route] = self.duration_count.get(route, 0) + timings.count
            self.duration_sum[route] = self.duration_sum.get(route, 0.0) + timings.latency.sum
            add("app_error_rate_percent", 100.0 * timings.errors / timings.count, route=route)
            add(
                "app_response_time_ms",
                timings.latency.quantile(self.response_time_quantile),
                route=route,
            )
            for q in QUANTILES:
                add(
                    "app_request_duration_ms",
                    timings.latency.quantile(q),
                    route=route,
                    quantile=f"{q:g}",
                )
        # a route that went quiet reports once that nothing fails and nothing is slow, so
        # an alert raised on it resolves instead of staying on its last busy value
        for route in self._busy_routes - routes.keys():
            add("app_error_rate_percent", 0.0, route=route)
            add("app_response_time_ms", 0.0, route=route)
        self._busy_routes = set(routes)
        for route, total in self.errors_total.items():
            add("app_errors_total", total, route=route)
            add("app_request_duration_ms_count", self.duration_count[route], route=route)
            add("app_request_duration_ms_sum", self.duration_sum[route], route=route)

    def _fold_queries(self, queries: dict[str, Timings], add: Any) -> None:
        for name, timings in queries.items():
            self.queries_total[name] = self.queries_total.get(name, 0) + timings.count
            self.query_errors_total[name] = self.query_errors_total.get(name, 0) + timings.errors
            add(
                "app_db_query_time_ms",
                timings.latency.quantile(self.response_time_quantile),
                query=name,
            )
        for name, total in self.queries_total.items():
            add("app_db_queries_total", total, query=name)
            add("app_db_query_errors_total", self.query_errors_total[name], query=name)

    def _fold_caches(self, caches: dict[str, list[int]], add: Any) -> None:
        for name, (hits, misses) in caches.items():
            self.cache_hits[name] = self.cache_hits.get(name, 0) + hits
            self.cache_misses[name] = self.cache_misses.get(name, 0) + misses
            if hits + misses:
                add("app_cache_hit_rate_percent", 100.0 * hits / (hits + misses), cache=name)
        for name, total in self.cache_hits.items():
            add("app_cache_hits_total", total, cache=name)
            add("app_cache_misses_total", self.cache_misses[name], cache=name)
