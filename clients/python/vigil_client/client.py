"""The client: where the middlewares and helpers record, and who pushes it to Vigil."""

from __future__ import annotations

import atexit
import os
import socket
import time
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from vigil_client.defaults import replace_default
from vigil_client.instruments import DbQueryTimer
from vigil_client.labels import LABEL_NAME, printable
from vigil_client.pusher import IngestSender, Pusher, PusherStats
from vigil_client.recorder import Recorder
from vigil_client.samples import Sample, SampleFolder

INGEST_PATH = "/api/monitoring/metrics"
# labels the client sets itself on some series
OWN_LABELS = frozenset({"route", "method", "status_class", "quantile", "query", "cache"})
MAX_BATCH_SAMPLES = 10_000  # Vigil's limit per POST


def _instance() -> str:
    return printable(f"{socket.gethostname()}:{os.getpid()}")


class VigilClient:
    """Records request, query and cache metrics and pushes them to Vigil in the background.

    ``url`` is Vigil's base URL (``http://vigil:8080``) and ``ingest_key`` an API key with
    the ``ingest`` role; both default to ``VIGIL_URL`` and ``VIGIL_INGEST_KEY``. Every
    sample carries ``labels`` and an ``instance`` label (``host:pid`` unless given; ``""``
    leaves it out), so several worker processes do not mix their counters. ``service``
    (default ``VIGIL_SERVICE``) names the application on the lines ``VigilLogHandler``
    sends.
    """

    def __init__(
        self,
        url: str | None = None,
        ingest_key: str | None = None,
        *,
        flush_interval_s: float = 10.0,
        labels: Mapping[str, str] | None = None,
        instance: str | None = None,
        service: str | None = None,
        max_routes: int = 100,
        max_names: int = 100,
        max_buffered_samples: int = 20_000,
        max_batch_samples: int = 2_000,
        timeout_s: float = 5.0,
        retry_backoff_s: float = 1.0,
        response_time_quantile: float = 0.95,
        start: bool = True,
    ) -> None:
        url = url if url is not None else os.environ.get("VIGIL_URL", "")
        ingest_key = ingest_key if ingest_key is not None else os.environ.get("VIGIL_INGEST_KEY")
        self.endpoint = _endpoint(url)
        if not ingest_key:
            raise ValueError("ingest_key: required (or set VIGIL_INGEST_KEY)")
        _check_positive(flush_interval_s=flush_interval_s, timeout_s=timeout_s)
        _check_positive(retry_backoff_s=retry_backoff_s)
        _check_positive(max_routes=max_routes, max_names=max_names)
        _check_positive(max_buffered_samples=max_buffered_samples)
        if not 1 <= max_batch_samples <= MAX_BATCH_SAMPLES:
            raise ValueError(f"max_batch_samples: must be between 1 and {MAX_BATCH_SAMPLES}")
        if not 0 < response_time_quantile <= 1:
            raise ValueError("response_time_quantile: must be in (0, 1]")
        self.static_labels = _checked_labels(labels or {})
        self.instance = None if instance is None else printable(instance)
        self.service = printable(
            service if service is not None else os.environ.get("VIGIL_SERVICE", "")
        )
        self.recorder = Recorder(max_routes=max_routes, max_names=max_names)
        self.folder = SampleFolder(self._labels(), response_time_quantile)
        self.pusher = Pusher(
            self._collect,
            IngestSender(self.endpoint, ingest_key, timeout_s),
            flush_interval_s,
            max_buffered_samples,
            max_batch_samples,
            retry_backoff_s,
        )
        self._closed = False
        self._started = False
        # at exit (daemon thread or not) what the last interval holds is still sent
        close = weakref.WeakMethod(self.close)
        atexit.register(lambda: (method := close()) is not None and method())
        if hasattr(os, "register_at_fork"):
            restart = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (m := restart()) is not None and m())
        if start:
            self.start()

    def _labels(self) -> dict[str, str]:
        instance = _instance() if self.instance is None else self.instance
        return {**self.static_labels, **({"instance": instance} if instance else {})}

    def start(self) -> None:
        if not self._closed:
            self._started = True
            self.pusher.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what was recorded and stop; later records are kept but never sent."""
        if self._closed:
            return
        self._closed = True
        self.pusher.close(timeout_s)

    def _after_fork(self) -> None:
        """A forked worker (gunicorn --preload) has no pusher thread: it gets its own."""
        self.recorder = Recorder(self.recorder.routes.limit, self.recorder.query_names.limit)
        self.folder = SampleFolder(self._labels(), self.folder.response_time_quantile)
        pusher = self.pusher
        self.pusher = Pusher(
            self._collect,
            pusher.sender,
            pusher.flush_interval_s,
            pusher.buffer.max_samples,
            pusher.max_batch_samples,
            pusher.first_backoff_s,
        )
        if self._started and not self._closed:
            self.pusher.start()

    def _collect(self) -> list[Sample]:
        return self.folder.fold(self.recorder.take(), time.time(), self.pusher.buffer.dropped)

    def stats(self) -> PusherStats:
        """Samples sent, dropped (backlog full), refused by Vigil, and waiting."""
        return self.pusher.snapshot()

    # what the middlewares and helpers call
    def record_request(
        self,
        template: str | None,
        path: str,
        method: str,
        status: int,
        duration_s: float,
        failed: bool = False,
    ) -> None:
        route = self.recorder.route_label(template, path, status)
        self.recorder.request(route, method, status, duration_s, failed)

    def db_query(self, name: str) -> DbQueryTimer:
        """Times a query: ``with client.db_query("load_user"):`` or as a decorator."""
        return DbQueryTimer(name, self)

    def record_query(self, name: str, duration_s: float, failed: bool = False) -> None:
        self.recorder.query(name, duration_s, failed)

    def cache_hit(self, name: str) -> None:
        self.recorder.cache(name, hit=True)

    def cache_miss(self, name: str) -> None:
        self.recorder.cache(name, hit=False)


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"url: {url!r} is not an http(s) URL of Vigil (or set VIGIL_URL)")
    base = url.rstrip("/")
    return base if base.endswith(INGEST_PATH) else base + INGEST_PATH


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name}: must be positive, not {value!r}")


def _checked_labels(labels: Mapping[str, str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, value in labels.items():
        if not LABEL_NAME.match(name) or name in OWN_LABELS or name == "instance":
            raise ValueError(
                f"labels[{name!r}]: not a usable label name (Prometheus names, not __*, "
                f"not one the client sets: {', '.join(sorted(OWN_LABELS))}, instance)"
            )
        checked[name] = printable(str(value))
    return checked


def configure(*args: Any, **kwargs: Any) -> VigilClient:
    """Create the process's default client, which the middlewares and helpers use when
    none is given; a previous default is closed (its samples sent)."""
    client = VigilClient(*args, **kwargs)
    previous = replace_default(client)
    if previous is not None:
        previous.close()
    return client
