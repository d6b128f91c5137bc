"""PromQL and chart queries answered by the metrics service, over request/reply.

Every PromQL answer is Prometheus' own envelope (``{"status": "success", "data": ...}``
or ``{"status": "error", "errorType": ..., "error": ...}``), so the gateway relays it
as is and only picks the HTTP status from ``errorType``. A reply travels in one NATS
message (at most 8 MB): a larger result is refused whole with an error that says how to
narrow it, never cut silently.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import orjson
import promql_parser

from services.metrics.promql import Engine, PromQLError, Result, prometheus_body
from services.metrics.promql.source import LabelMatcher, MatchOp, SeriesSource
from services.metrics.remote.query import RemoteQueryClient, RemoteQueryError
from services.metrics.series_source import DuckSeriesSource
from services.metrics.store import MetricsStore
from shared import commands
from shared.commands import (
    PROM_MAX_TIME_MS,
    PROM_MIN_TIME_MS,
    AggregateSamples,
    PromInstantQuery,
    PromLabelsQuery,
    PromLabelValuesQuery,
    PromRangeQuery,
    PromSeriesQuery,
    parse_command,
)
from shared.errors import InvalidInput
from shared.settings import Settings

# what one reply may carry: NATS' max_payload (8 MB) less room for the envelope
MAX_REPLY_BYTES = 8 * 1024 * 1024 - 64 * 1024
LOOKUP_TIMEOUT_S = 30.0  # series and label lookups
# series one query may select: more would not fit in a reply at any useful length
MAX_SERIES = 50_000
Envelope = dict[str, Any]
# an engine's answer: the envelope's JSON bytes, built once (``prometheus_body``)
Answer = Envelope | orjson.Fragment
Handler = Callable[[dict[str, Any]], Awaitable[Any]]

# the parser's match operators, by name (they are not hashable)
MATCH_OPS = {
    "MatchOp.Equal": MatchOp.EQUAL,
    "MatchOp.NotEqual": MatchOp.NOT_EQUAL,
    "MatchOp.Re": MatchOp.RE,
    "MatchOp.NotRe": MatchOp.NOT_RE,
}


class PromEngine(Protocol):
    """The PromQL evaluator (``services.metrics.promql``) as these queries use it."""

    async def instant(self, query: str, time_ms: int) -> Result: ...

    async def range(self, query: str, start_ms: int, end_ms: int, step_ms: int) -> Result: ...


class Aggregator(Protocol):
    """The store's per-step aggregation for dashboard charts."""

    async def aggregate(
        self,
        name: str,
        labels: dict[str, str],
        start_s: float,
        end_s: float,
        step_s: float,
        aggregation: str,
        by: list[str],
    ) -> list[dict[str, Any]]: ...


class RemotePromQL(Protocol):
    """A Prometheus-compatible store answering instead of the local one
    (``services.metrics.remote.query``): each call returns that store's envelope, or
    raises an error carrying Prometheus' ``error_type``."""

    async def query(self, params: list[tuple[str, str]]) -> Envelope: ...

    async def query_range(self, params: list[tuple[str, str]]) -> Envelope: ...

    async def series(self, params: list[tuple[str, str]]) -> Envelope: ...

    async def labels(self, params: list[tuple[str, str]]) -> Envelope: ...

    async def label_values(self, name: str, params: list[tuple[str, str]]) -> Envelope: ...

    async def close(self) -> None: ...


class PromFailure(Exception):
    """A query refused or failed, with Prometheus' errorType."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def success(data: Any, warnings: list[str] | None = None) -> Envelope:
    body: Envelope = {"status": "success", "data": data}
    if warnings:
        body["warnings"] = warnings
    return body


def failure(error_type: str, message: str) -> Envelope:
    return {"status": "error", "errorType": error_type, "error": message}


def matcher_groups(selector: str) -> list[list[LabelMatcher]]:
    """The matcher sets of one series selector (``{a="b" or c="d"}`` gives two)."""
    try:
        expr = promql_parser.parse(selector)
    except ValueError as exc:
        raise PromFailure("bad_data", f'invalid parameter "match[]": {exc}') from exc
    if not isinstance(expr, promql_parser.VectorSelector):
        raise PromFailure(
            "bad_data",
            f'invalid parameter "match[]": {selector[:200]!r} is not a series selector',
        )
    named = [LabelMatcher("__name__", MatchOp.EQUAL, expr.name)] if expr.name else []
    groups = [list(expr.matchers.matchers)] if expr.matchers.matchers else []
    groups += [list(group) for group in expr.matchers.or_matchers]
    result = [
        named + [LabelMatcher(m.name, MATCH_OPS[str(m.op)], m.value) for m in group]
        for group in groups or [[]]
    ]
    for group in result:
        if all(_matches_empty(m) for m in group):
            raise PromFailure(
                "bad_data",
                'invalid parameter "match[]": vector selector must contain at least one '
                "non-empty matcher",
            )
    return result


def _matches_empty(matcher: LabelMatcher) -> bool:
    """Whether a series without the label passes ``matcher`` (as Prometheus checks that a
    selector cannot select every series)."""
    if matcher.op in (MatchOp.EQUAL, MatchOp.NOT_EQUAL):
        equal = matcher.value == ""
    else:
        try:
            equal = re.fullmatch(matcher.value, "") is not None
        except re.error as exc:
            raise PromFailure(
                "bad_data", f'invalid parameter "match[]": {matcher.value!r}: {exc}'
            ) from exc
    return equal if matcher.op in (MatchOp.EQUAL, MatchOp.RE) else not equal


def selector_groups(texts: Sequence[str]) -> list[list[LabelMatcher]]:
    return [group for text in texts for group in matcher_groups(text)]


def within_reply(envelope: Envelope, limit: int = MAX_REPLY_BYTES) -> Envelope:
    """The envelope, or an execution error when it would not fit in one reply."""
    size = len(orjson.dumps(envelope))
    if size <= limit:
        return envelope
    return too_large(size, limit)


def too_large(size: int, limit: int) -> Envelope:
    return failure(
        "execution",
        f"the result takes {size:,} bytes, more than the {limit:,} one answer may hold: "
        "select fewer series, a shorter range or a larger step",
    )


def limited(items: list[Any], limit: int) -> tuple[list[Any], list[str]]:
    if limit and len(items) > limit:
        return items[:limit], ["results truncated due to limit"]
    return items, []


class PromQueries:
    """The responders: PromQL on the engine over the store (or on the remote store),
    series and label lookups on the store, and per-step aggregates for charts."""

    def __init__(
        self,
        engine: PromEngine,
        source: SeriesSource,
        aggregator: Aggregator,
        remote: RemotePromQL | None = None,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ):
        self.engine = engine
        self.source = source
        self.aggregator = aggregator
        self.remote = remote
        self.max_reply_bytes = max_reply_bytes

    async def close(self) -> None:
        if self.remote is not None:
            await self.remote.close()

    def handlers(self) -> list[tuple[str, Handler]]:
        """(subject, responder) pairs for ``ServiceRuntime.respond``."""
        return [
            (commands.PROM_INSTANT_QUERY, self.instant),
            (commands.PROM_RANGE_QUERY, self.range),
            (commands.PROM_SERIES, self.series),
            (commands.PROM_LABELS, self.labels),
            (commands.PROM_LABEL_VALUES, self.label_values),
            (commands.AGGREGATE_SAMPLES, self.aggregate),
        ]

    async def instant(self, body: dict[str, Any]) -> Answer:
        query = parse_command(PromInstantQuery, body)
        if self.remote is not None:
            params = [("query", query.query), ("time", _seconds(query.time_ms))]
            params.append(("timeout", f"{query.timeout_s:g}s"))
            return await self._evaluate(self.remote.query(params), query.timeout_s)
        return await self._evaluate(
            self.engine.instant(query.query, query.time_ms), query.timeout_s
        )

    async def range(self, body: dict[str, Any]) -> Answer:
        query = parse_command(PromRangeQuery, body)
        if self.remote is not None:
            params = [
                ("query", query.query),
                ("start", _seconds(query.start_ms)),
                ("end", _seconds(query.end_ms)),
                ("step", _seconds(query.step_ms)),
                ("timeout", f"{query.timeout_s:g}s"),
            ]
            return await self._evaluate(self.remote.query_range(params), query.timeout_s)
        work = self.engine.range(query.query, query.start_ms, query.end_ms, query.step_ms)
        return await self._evaluate(work, query.timeout_s)

    async def series(self, body: dict[str, Any]) -> Answer:
        return await _answered(self._series(parse_command(PromSeriesQuery, body)))

    async def labels(self, body: dict[str, Any]) -> Answer:
        return await _answered(self._labels(parse_command(PromLabelsQuery, body)))

    async def label_values(self, body: dict[str, Any]) -> Answer:
        return await _answered(self._label_values(parse_command(PromLabelValuesQuery, body)))

    async def _series(self, query: PromSeriesQuery) -> Answer:
        if not query.match:
            return failure("bad_data", "no match[] parameter provided")
        if self.remote is not None:
            return await self._evaluate(self.remote.series(_lookup_params(query)))
        seen: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        for group in selector_groups(query.match):
            for labels in await self.source.series(group, query.start_ms, query.end_ms):
                seen.setdefault(tuple(sorted(labels.items())), labels)
        found = [seen[key] for key in sorted(seen)]
        found, warnings = limited(found, query.limit)
        return within_reply(success(found, warnings), self.max_reply_bytes)

    async def _labels(self, query: PromLabelsQuery) -> Answer:
        if self.remote is not None:
            return await self._evaluate(self.remote.labels(_lookup_params(query)))
        names: set[str] = set()
        for group in selector_groups(query.match) if query.match else [[]]:
            names.update(await self.source.label_names(group, query.start_ms, query.end_ms))
        found, warnings = limited(sorted(names), query.limit)
        return within_reply(success(found, warnings), self.max_reply_bytes)

    async def _label_values(self, query: PromLabelValuesQuery) -> Answer:
        if self.remote is not None:
            work = self.remote.label_values(query.name, _lookup_params(query))
            return await self._evaluate(work)
        values: set[str] = set()
        for group in selector_groups(query.match) if query.match else [[]]:
            values.update(
                await self.source.label_values(query.name, group, query.start_ms, query.end_ms)
            )
        found, warnings = limited(sorted(values), query.limit)
        return within_reply(success(found, warnings), self.max_reply_bytes)

    async def aggregate(self, body: dict[str, Any]) -> dict[str, Any]:
        """One point per step and group: ``{"series": [{"labels", "points"}]}``."""
        query = parse_command(AggregateSamples, body)
        found = await self.aggregator.aggregate(
            query.name,
            query.labels,
            query.start,
            query.end,
            query.step,
            query.aggregation,
            query.by,
        )
        reply = {"series": found}
        if len(orjson.dumps(reply)) > self.max_reply_bytes:
            raise InvalidInput(
                "the result is larger than one answer may hold: filter by more labels, "
                "group by fewer or raise step",
                field="step",
            )
        return reply

    async def _evaluate(
        self, work: Awaitable[Result | Envelope], timeout_s: float = LOOKUP_TIMEOUT_S
    ) -> Answer:
        """The answer of ``work`` within ``timeout_s``: an engine's result, or the
        envelope a remote store gave; its errors as Prometheus' envelopes."""
        timed_out = failure("timeout", f"query timed out in query execution after {timeout_s:g}s")
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(work, timeout_s)
        except TimeoutError:
            return timed_out
        except (PromQLError, RemoteQueryError) as exc:
            return failure(exc.error_type, exc.message)
        if time.monotonic() - started > timeout_s:
            # evaluation that never yields cannot be interrupted: its late result is
            # still refused, so a deadline means the same whatever the query did
            return timed_out
        if isinstance(result, dict):
            return within_reply(result, self.max_reply_bytes)
        # the body is built once, in bulk, and travels as it is: the reply and the
        # gateway's HTTP answer carry these bytes without decoding them again
        body = prometheus_body(result)
        if len(body) > self.max_reply_bytes:
            return too_large(len(body), self.max_reply_bytes)
        return orjson.Fragment(body)


async def _answered(work: Awaitable[Answer]) -> Answer:
    try:
        return await work
    except PromFailure as exc:
        return failure(exc.error_type, exc.message)


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


def _lookup_params(query: PromSeriesQuery) -> list[tuple[str, str]]:
    params = [("match[]", text) for text in query.match]
    if query.start_ms > PROM_MIN_TIME_MS:  # an open end is left to the store
        params.append(("start", _seconds(query.start_ms)))
    if query.end_ms < PROM_MAX_TIME_MS:
        params.append(("end", _seconds(query.end_ms)))
    if query.limit:
        params.append(("limit", str(query.limit)))
    return params


def prom_queries(store: MetricsStore, settings: Settings) -> PromQueries:
    """The engine over the store, and the remote store of ``VIGIL_METRICS_QUERY_URL``
    answering PromQL instead when one is configured."""
    source = DuckSeriesSource(store)
    engine = Engine(source, max_series=MAX_SERIES)
    return PromQueries(engine, source, store, RemoteQueryClient.from_settings(settings))
