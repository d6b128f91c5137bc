"""Database query timing and cache hit/miss counting, for code outside the middlewares."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from vigil_client.defaults import default_client

if TYPE_CHECKING:
    from vigil_client.client import VigilClient

log = logging.getLogger("vigil_client")
F = TypeVar("F", bound=Callable[..., Any])
_warned = False


def _client_or_default(client: VigilClient | None) -> VigilClient | None:
    global _warned
    if client is not None:
        return client
    found = default_client()
    if found is None and not _warned:
        _warned = True
        log.warning("vigil_client is not configured (vigil_client.configure): nothing recorded")
    return found


class DbQueryTimer:
    """Times the block or function it wraps as ``app_db_query_time_ms{query=name}``.

    Works with ``with``, ``async with`` and as a decorator of plain or async functions; an
    exception inside counts in ``app_db_query_errors_total`` and propagates.
    """

    def __init__(self, name: str, client: VigilClient | None = None) -> None:
        self.name = name
        self.client = client
        self._started: list[float] = []

    def __enter__(self) -> DbQueryTimer:
        self._started.append(time.perf_counter())
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        elapsed = time.perf_counter() - self._started.pop()
        client = _client_or_default(self.client)
        if client is not None:
            client.record_query(self.name, elapsed, failed=kind is not None)

    async def __aenter__(self) -> DbQueryTimer:
        return self.__enter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(kind, exc, traceback)

    def __call__(self, func: F) -> F:
        name, client = self.name, self.client
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                with DbQueryTimer(name, client):
                    return await func(*args, **kwargs)

            return timed_async  # type: ignore[return-value]

        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with DbQueryTimer(name, client):
                return func(*args, **kwargs)

        return timed  # type: ignore[return-value]


def db_query(name: str, client: VigilClient | None = None) -> DbQueryTimer:
    """``with db_query("load_user"):`` or ``@db_query("load_user")``."""
    return DbQueryTimer(name, client)


def cache_hit(name: str, client: VigilClient | None = None) -> None:
    """Count a lookup in cache ``name`` that found its value."""
    found = _client_or_default(client)
    if found is not None:
        found.cache_hit(name)


def cache_miss(name: str, client: VigilClient | None = None) -> None:
    """Count a lookup in cache ``name`` that did not."""
    found = _client_or_default(client)
    if found is not None:
        found.cache_miss(name)
