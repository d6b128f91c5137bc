"""PromQL answered by a remote Prometheus-compatible store instead of Vigil's own.

When Vigil forwards its samples to a larger store (``forward``), that store holds more
than Vigil keeps, and can answer PromQL over all of it. This client speaks its HTTP API
(``/api/v1/query``, ``/query_range``, ``/series``, ``/labels``,
``/label/<name>/values``) and returns the store's JSON body as it came, so Vigil's API
answers exactly what the store said. Failures become ``RemoteQueryError`` carrying
Prometheus' ``errorType`` and the HTTP status to answer with, like the engine's own
``PromQLError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn
from urllib.parse import quote

import aiohttp
import orjson

from services.metrics.remote.auth import NO_AUTH, RemoteAuth
from shared.settings import Settings

USER_AGENT = "Vigil-remote-query/1.0"
MAX_BODY_BYTES = 64 * 1024 * 1024  # a store's answer larger than this is refused
MAX_MESSAGE_CHARS = 500

# Prometheus' error types and the statuses its API answers them with
STATUS_OF_ERROR_TYPE = {
    "bad_data": 400,
    "execution": 422,
    "canceled": 499,
    "timeout": 503,
    "unavailable": 503,
    "not_found": 404,
    "internal": 500,
}

Params = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]


class RemoteQueryError(Exception):
    """The remote store failed a query: ``error_type`` is Prometheus' ``errorType``
    (``bad_data``, ``execution``, ``timeout``, ``unavailable``...), ``status`` the HTTP
    status Vigil's API answers with."""

    def __init__(self, error_type: str, message: str, status: int):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"RemoteQueryError({self.error_type!r}, {self.message!r}, {self.status})"


def _pairs(params: Params | None) -> list[tuple[str, str]]:
    """Query parameters as pairs; a list value repeats its key (``match[]``)."""
    if params is None:
        return []
    if isinstance(params, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, value in params.items():
            if isinstance(value, str):
                pairs.append((key, value))
            else:
                pairs.extend((key, str(v)) for v in value)
        return pairs
    return [(str(k), str(v)) for k, v in params]


class RemoteQueryClient:
    def __init__(
        self,
        base_url: str,
        auth: RemoteAuth = NO_AUTH,
        timeout: float = 30.0,
        session: aiohttp.ClientSession | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.headers = {
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **auth.headers(),
        }
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteQueryClient | None:
        """The client ``VIGIL_METRICS_QUERY_URL`` configures, or None without it."""
        if settings.metrics_query_url is None:
            return None
        auth = RemoteAuth(
            settings.metrics_query_bearer_token,
            settings.metrics_query_username,
            settings.metrics_query_password,
        )
        return cls(settings.metrics_query_url, auth, settings.metrics_query_timeout_s)

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> RemoteQueryClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def query(self, params: Params) -> dict[str, Any]:
        return await self._call("/api/v1/query", params)

    async def query_range(self, params: Params) -> dict[str, Any]:
        return await self._call("/api/v1/query_range", params)

    async def series(self, params: Params) -> dict[str, Any]:
        return await self._call("/api/v1/series", params)

    async def labels(self, params: Params | None = None) -> dict[str, Any]:
        return await self._call("/api/v1/labels", params)

    async def label_values(self, name: str, params: Params | None = None) -> dict[str, Any]:
        return await self._call(f"/api/v1/label/{quote(name, safe='')}/values", params)

    async def _call(self, path: str, params: Params | None) -> dict[str, Any]:
        """POST the parameters as a form (no URL length limit on long queries, which
        every Prometheus-compatible store accepts) and return the JSON body."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        form = _pairs(params)
        try:
            async with self._session.post(
                self.base_url + path, data=form, headers=self.headers, timeout=self.timeout
            ) as response:
                raw = await response.content.read(MAX_BODY_BYTES + 1)
                status = response.status
        except TimeoutError:
            raise RemoteQueryError(
                "timeout", f"the remote store did not answer within {self.timeout.total:g} s", 503
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise RemoteQueryError(
                "unavailable", f"the remote store is unreachable: {type(exc).__name__}", 503
            ) from None
        if len(raw) > MAX_BODY_BYTES:
            raise RemoteQueryError("execution", "the remote store's answer is too large", 422)
        return _body(raw, status)


def _body(raw: bytes, status: int) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and body.get("status") == "success" and 200 <= status < 300:
        return body
    if isinstance(body, dict) and body.get("status") == "error":
        error_type = _error_type(str(body.get("errorType") or ""), status)
        message = str(body.get("error") or "the remote store failed the query")
        answered = status if 400 <= status < 600 else STATUS_OF_ERROR_TYPE.get(error_type, 422)
        _raise(error_type, message, answered)
    text = raw[:MAX_MESSAGE_CHARS].decode("utf-8", "replace").strip()
    if status >= 500 or status == 429:
        _raise("unavailable", f"the remote store answered HTTP {status}: {text}", 503)
    if status in (401, 403):
        _raise("unavailable", f"the remote store refused Vigil's credentials ({status})", 503)
    if 400 <= status < 500:
        _raise("bad_data", f"the remote store answered HTTP {status}: {text}", 400)
    _raise("internal", f"the remote store answered HTTP {status} without JSON", 502)


def _error_type(said: str, status: int) -> str:
    """Prometheus' name for the error; some stores (VictoriaMetrics) put the HTTP status
    there instead."""
    if said and not said.isdigit():
        return said
    code = int(said) if said else status
    return {400: "bad_data", 422: "execution", 503: "unavailable", 504: "timeout"}.get(
        code, "execution" if code < 500 else "internal"
    )


def _raise(error_type: str, message: str, status: int) -> NoReturn:
    raise RemoteQueryError(error_type, message[:MAX_MESSAGE_CHARS], status)
