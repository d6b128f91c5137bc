"""The PromQL engine: parses a query and evaluates it over all steps of the query at once.

Every node evaluates to a value holding all steps (see ``values``), so a range query costs
about as many numpy calls as an instant query; only per-group and per-matched-pair work
loops in Python.

Semantics are Prometheus 2.x's, checked against ``promtool`` (Debian's 2.42): range
windows ``[t - range, t]`` closed at both ends, a 5 m lookback for instant selectors,
staleness markers, ``offset`` and ``@``, subqueries, and the float arithmetic of its
functions (extrapolated rates, compensated running means). Every function of 2.42 is
supported except ``holt_winters`` and those of native histograms (``histogram_count``,
``histogram_sum``, ``histogram_fraction``); ``histogram_quantile`` reads classic
``_bucket{le}`` series.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import promql_parser as pp

from .aggregations import aggregate
from .binary import SET_OPS, Matching, scalar_scalar, vector_scalar, vector_vector
from .errors import BAD_DATA, EXECUTION, TIMEOUT, PromQLError
from .histogram import histogram_quantile
from .instant_functions import (
    CALENDAR,
    ELEMENTWISE,
    calendar,
    clamp,
    elementwise,
    label_join,
    label_replace,
    round_to,
)
from .range_functions import RANGE_FUNCTIONS, sum_over_time
from .result import Result
from .source import LabelMatcher, MatchOp, SeriesData, SeriesSource, Want
from .values import (
    METRIC_NAME,
    Ints,
    Labels,
    Matrix,
    Scalar,
    String,
    Value,
    Vector,
    dedupe,
    drop_name,
)
from .windows import Flat, latest_samples

# The parser's enums are not hashable: keyed by their names.
_MATCH_OPS = {
    "MatchOp.Equal": MatchOp.EQUAL,
    "MatchOp.NotEqual": MatchOp.NOT_EQUAL,
    "MatchOp.Re": MatchOp.RE,
    "MatchOp.NotRe": MatchOp.NOT_RE,
}
_CARDINALITY = {
    "VectorMatchCardinality.OneToOne": "one-to-one",
    "VectorMatchCardinality.ManyToOne": "many-to-one",
    "VectorMatchCardinality.OneToMany": "one-to-many",
    "VectorMatchCardinality.ManyToMany": "many-to-many",
}
_ORDERING = ("sort", "sort_desc", "topk", "bottomk")

# Functions of the changes between points: from rollups they see one point per bucket,
# so the store is asked for buckets of at most a part of the window (see ``source``).
NEEDS_POINTS = frozenset(
    {"rate", "increase", "irate", "delta", "idelta", "deriv", "predict_linear", "resets", "changes"}
)
POINTS_PER_WINDOW = 4


def _ms(delta: timedelta | None) -> int:
    if delta is None:
        return 0
    return round(delta / timedelta(milliseconds=1))


def parse(query: str) -> pp.Expr:
    try:
        return pp.parse(query)
    except (ValueError, TypeError) as exc:
        raise PromQLError(BAD_DATA, f'invalid parameter "query": {exc}') from exc


def _unwrap(node: pp.Expr) -> pp.Expr:
    while isinstance(node, pp.ParenExpr):
        node = node.expr
    return node


def _ordered(node: pp.Expr) -> bool:
    node = _unwrap(node)
    if isinstance(node, pp.Call):
        return bool(node.func.name in _ORDERING)
    if isinstance(node, pp.AggregateExpr):
        return str(node.op) in _ORDERING
    return False


class Engine:
    """Evaluates PromQL against a :class:`SeriesSource`."""

    def __init__(
        self,
        source: SeriesSource,
        lookback_ms: int = 300_000,
        max_points_per_series: int = 11_000,
        max_series: int = 500_000,
        max_samples: int = 50_000_000,
        timeout_s: float = 120.0,
        subquery_step_ms: int = 60_000,
    ) -> None:
        """Limits as Prometheus' flags: ``max_samples`` (--query.max-samples) bounds the
        samples one query loads, ``timeout_s`` (--query.timeout) its running time."""
        self.source = source
        self.lookback_ms = lookback_ms
        self.max_points_per_series = max_points_per_series
        self.max_series = max_series
        self.max_samples = max_samples
        self.timeout_s = timeout_s
        self.subquery_step_ms = subquery_step_ms

    async def instant(self, query: str, time_ms: int) -> Result:
        node = parse(query)
        steps = np.array([time_ms], dtype=np.int64)
        ev = _Evaluation(self, steps, time_ms, time_ms, 0)
        value = await ev.eval(node)
        if isinstance(value, Matrix):
            value = _clip_to_window(value)
        return Result(value, steps, instant=True, keep_order=_ordered(node))

    async def range(self, query: str, start_ms: int, end_ms: int, step_ms: int) -> Result:
        if step_ms <= 0:
            raise PromQLError(
                BAD_DATA,
                "zero or negative query resolution step widths are not accepted. "
                "Try a positive integer",
            )
        if end_ms < start_ms:
            raise PromQLError(BAD_DATA, "end timestamp must not be before start time")
        if (end_ms - start_ms) // step_ms + 1 > self.max_points_per_series:
            raise PromQLError(
                BAD_DATA,
                f"exceeded maximum resolution of {self.max_points_per_series:,} points per "
                "timeseries. Try decreasing the query resolution (?step=XX)",
            )
        node = parse(query)
        kind = _unwrap(node)
        if isinstance(kind, pp.MatrixSelector | pp.SubqueryExpr | pp.StringLiteral):
            name = "string" if isinstance(kind, pp.StringLiteral) else "range vector"
            raise PromQLError(
                BAD_DATA,
                f'invalid expression type "{name}" for range query, must be Scalar or '
                "instant Vector",
            )
        steps = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
        ev = _Evaluation(self, steps, start_ms, end_ms, step_ms)
        value = await ev.eval(node)
        return Result(value, steps, instant=False)


def _clip_to_window(matrix: Matrix) -> Matrix:
    """An instant query's range vector holds exactly the samples of its window."""
    lo, hi = matrix.flat.bounds(matrix.ref_ms[:1], matrix.range_ms)
    parts = [
        (matrix.flat.ts[a:b], matrix.flat.values[a:b])
        for a, b in zip(lo[:, 0].tolist(), hi[:, 0].tolist(), strict=True)
    ]
    return Matrix(matrix.labels, Flat.of(parts, drop_stale=False), matrix.ref_ms, matrix.range_ms)


def _equality_labels(vs: pp.VectorSelector) -> Labels:
    """Labels absent() gives its output: the selector's equality matchers, minus any name
    matched twice."""
    out: Labels = {}
    seen: set[str] = set()
    for m in vs.matchers.matchers:
        if m.name == METRIC_NAME:
            continue
        if m.name in seen:
            out.pop(m.name, None)
            continue
        seen.add(m.name)
        if m.op == pp.MatchOp.Equal:
            out[m.name] = m.value
    return out


class _Evaluation:
    """One query's evaluation: the steps, and how to turn each node into a value."""

    def __init__(
        self, engine: Engine, steps: Ints, start_ms: int, end_ms: int, step_ms: int
    ) -> None:
        self.engine = engine
        self.steps = steps
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.step_ms = step_ms
        self.deadline = time.monotonic() + engine.timeout_s
        self.samples = 0

    @property
    def n(self) -> int:
        return len(self.steps)

    async def eval(self, node: pp.Expr) -> Value:
        if time.monotonic() > self.deadline:
            raise PromQLError(TIMEOUT, "query timed out in expression evaluation")
        if isinstance(node, pp.NumberLiteral):
            return Scalar(np.full(self.n, float(node.val)))
        if isinstance(node, pp.StringLiteral):
            return String(str(node.val))
        if isinstance(node, pp.ParenExpr):
            return await self.eval(node.expr)
        if isinstance(node, pp.UnaryExpr):
            return self._negate(await self.eval(node.expr))
        if isinstance(node, pp.VectorSelector):
            return await self._vector_selector(node)
        if isinstance(node, pp.MatrixSelector | pp.SubqueryExpr):
            return await self._matrix(node, Want.LAST)
        if isinstance(node, pp.Call):
            return await self._call(node)
        if isinstance(node, pp.AggregateExpr):
            return await self._aggregate(node)
        if isinstance(node, pp.BinaryExpr):
            return await self._binary(node)
        raise PromQLError(BAD_DATA, f"unsupported expression: {node}")

    # -- selectors -------------------------------------------------------------------

    def _ref_times(self, at: pp.AtModifier | None, offset: timedelta | None) -> Ints:
        if at is None:
            base = self.steps
        else:
            if at.type == pp.AtModifierType.Start:
                at_ms = self.start_ms
            elif at.type == pp.AtModifierType.End:
                at_ms = self.end_ms
            elif at.at is not None:
                at_ms = round(at.at.timestamp() * 1000)
            else:
                raise PromQLError(BAD_DATA, "@ modifier without a time")
            base = np.full(self.n, at_ms, dtype=np.int64)
        return base - _ms(offset)

    async def _select(
        self,
        vs: pp.VectorSelector,
        ref: Ints,
        range_ms: int,
        want: Want,
        resolution_ms: int | None = None,
    ) -> list[SeriesData]:
        """Series with their points in ``[min(ref) - range_ms, max(ref)]``; the store may
        answer from buckets no longer than the step nor ``resolution_ms`` (default: the
        range)."""
        branches: list[Sequence[pp.Matcher]] = (
            list(vs.matchers.or_matchers) if vs.matchers.or_matchers else [vs.matchers.matchers]
        )
        selected: list[SeriesData] = []
        for branch in branches:
            matchers = [LabelMatcher(m.name, _MATCH_OPS[str(m.op)], m.value) for m in branch]
            if vs.name:
                matchers.insert(0, LabelMatcher(METRIC_NAME, MatchOp.EQUAL, vs.name))
            selected += await self.engine.source.select(
                matchers,
                int(ref.min()) - range_ms,
                int(ref.max()),
                step_ms=self.step_ms,
                range_ms=range_ms if resolution_ms is None else resolution_ms,
                want=want,
            )
        if len(branches) > 1:  # a series matched by two `or` branches counts once
            seen: set[tuple[tuple[str, str], ...]] = set()
            unique = []
            for s in selected:
                key = tuple(sorted(s.labels.items()))
                if key not in seen:
                    seen.add(key)
                    unique.append(s)
            selected = unique
        self.samples += sum(len(s.ts) for s in selected)
        if self.samples > self.engine.max_samples:
            raise PromQLError(
                EXECUTION,
                "query processing would load too many samples into memory in query execution",
            )
        if len(selected) > self.engine.max_series:
            raise PromQLError(
                EXECUTION,
                f"query selects {len(selected)} series, more than the limit of "
                f"{self.engine.max_series}",
            )
        return selected

    async def _vector_selector(self, vs: pp.VectorSelector) -> Vector:
        """The newest point within the lookback at each step. A range query's steps may
        be answered from buckets as long as the step (a 30-day chart at 1 h steps reads
        the stored 1 h rollups, not 5 m ones made from raw samples); a bucket's point is
        its newest sample, so from buckets the lookback grows by one bucket, which keeps
        the previous bucket in sight at steps that do not fall on bucket edges."""
        ref = self._ref_times(vs.at, vs.offset)
        lookback = self.engine.lookback_ms
        coarsest = self.step_ms if self.step_ms > 0 else lookback
        data = await self._select(
            vs, ref, lookback + coarsest, Want.LAST, resolution_ms=max(lookback, self.step_ms)
        )
        lookback += max((s.resolution_ms for s in data), default=0)
        flat = Flat.of([(s.ts, s.values) for s in data], drop_stale=False)
        values, present, sample_ts = latest_samples(flat, ref, lookback)
        rows = np.flatnonzero(present.any(axis=1))
        if len(rows) == 0:
            return Vector.empty(self.n)
        labels = [dict(data[i].labels) for i in rows.tolist()]
        return Vector(labels, values[rows], present[rows], sample_ts[rows])

    async def _matrix(self, node: pp.Expr, want: Want, points: int = 1) -> Matrix:
        """A range vector; ``points``: how many points each window needs at least, so
        buckets of at most ``range / points`` are asked for."""
        node = _unwrap(node)
        if isinstance(node, pp.MatrixSelector):
            vs = node.vector_selector
            range_ms = _ms(node.range)
            ref = self._ref_times(vs.at, vs.offset)
            data = await self._select(vs, ref, range_ms, want, resolution_ms=range_ms // points)
            flat = Flat.of([(s.ts, s.values) for s in data], drop_stale=True)
            labels = [dict(s.labels) for s in data]
            rolled_up = np.array([s.resolution_ms > 0 for s in data], dtype=bool)
            return Matrix(labels, flat, ref, range_ms, _equality_labels(vs), rolled_up)
        if isinstance(node, pp.SubqueryExpr):
            return await self._subquery(node)
        raise PromQLError(BAD_DATA, f"expected a range vector, got {node}")

    async def _subquery(self, node: pp.SubqueryExpr) -> Matrix:
        range_ms = _ms(node.range)
        step = _ms(node.step) or self.engine.subquery_step_ms
        ref = self._ref_times(node.at, node.offset)
        first = int(ref.min()) - range_ms
        start = (first // step) * step
        if start < first:
            start += step
        steps = np.arange(start, int(ref.max()) + 1, step, dtype=np.int64)
        if len(steps) > self.engine.max_points_per_series * 100:
            raise PromQLError(EXECUTION, "subquery resolution too fine for its range")
        inner = _Evaluation(self.engine, steps, self.start_ms, self.end_ms, step)
        value = await inner.eval(node.expr)
        if isinstance(value, Scalar):
            value = Vector([{}], value.values[None, :], np.ones((1, len(steps)), dtype=bool))
        if not isinstance(value, Vector):
            raise PromQLError(BAD_DATA, "subquery is only allowed on instant vector or scalar")
        rows, cols = np.nonzero(value.present)
        counts = np.bincount(rows, minlength=len(value))
        flat = Flat(
            steps[cols],
            value.values[rows, cols],
            np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
        )
        return Matrix(value.labels, flat, ref, range_ms)

    # -- operators -------------------------------------------------------------------

    def _negate(self, value: Value) -> Value:
        if isinstance(value, Scalar):
            return Scalar(-value.values)
        if isinstance(value, Vector):
            return Vector(value.labels, -value.values, value.present).with_labels(
                [drop_name(lb) for lb in value.labels]
            )
        raise PromQLError(BAD_DATA, "unary minus needs a scalar or an instant vector")

    async def _binary(self, node: pp.BinaryExpr) -> Value:
        op = str(node.op)
        lhs = await self.eval(node.lhs)
        rhs = await self.eval(node.rhs)
        mod = node.modifier
        return_bool = bool(mod.return_bool) if mod is not None else False
        if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
            return scalar_scalar(op, lhs, rhs, return_bool)
        if isinstance(lhs, Vector) and isinstance(rhs, Scalar):
            return vector_scalar(op, lhs, rhs, False, return_bool)
        if isinstance(lhs, Scalar) and isinstance(rhs, Vector):
            return vector_scalar(op, rhs, lhs, True, return_bool)
        if isinstance(lhs, Vector) and isinstance(rhs, Vector):
            matching = Matching(return_bool=return_bool)
            if op in SET_OPS:
                matching.card = "many-to-many"
            if mod is not None:
                matching.card = _CARDINALITY.get(str(mod.card), matching.card)
                if mod.matching is not None:
                    matching.on = mod.matching.type == pp.LabelModifierType.Include
                    matching.labels = list(mod.matching.labels)
                matching.include = list(mod.group_labels or [])
            return vector_vector(op, lhs, rhs, matching)
        raise PromQLError(BAD_DATA, f"operator {op} is not defined between these operand types")

    async def _scalar_arg(self, node: pp.Expr) -> Scalar:
        value = await self.eval(node)
        if not isinstance(value, Scalar):
            raise PromQLError(BAD_DATA, f"expected a scalar, got {node}")
        return value

    async def _vector_arg(self, node: pp.Expr) -> Vector:
        value = await self.eval(node)
        if not isinstance(value, Vector):
            raise PromQLError(BAD_DATA, f"expected an instant vector, got {node}")
        return value

    async def _string_arg(self, node: pp.Expr) -> str:
        value = await self.eval(node)
        if not isinstance(value, String):
            raise PromQLError(BAD_DATA, f"expected a string, got {node}")
        return value.value

    async def _aggregate(self, node: pp.AggregateExpr) -> Vector:
        op = str(node.op)
        vec = await self._vector_arg(node.expr)
        names: list[str] = []
        without = False
        if node.modifier is not None:
            names = list(node.modifier.labels)
            without = node.modifier.type == pp.AggModifierType.Without
        param: np.ndarray | str | None = None
        if op == "count_values" and node.param is not None:
            param = await self._string_arg(node.param)
        elif node.param is not None:
            param = (await self._scalar_arg(node.param)).values
        result = aggregate(op, vec, names, without, param)
        if op in ("topk", "bottomk") and self.n == 1:
            result = _order_rows(result, descending=op == "topk")
        return result

    async def _call(self, node: pp.Call) -> Value:
        name = node.func.name
        args = list(node.args)
        if name in RANGE_FUNCTIONS:
            return await self._range_function(name, args)
        if name == "absent_over_time":
            matrix = await self._matrix(args[0], Want.LAST)
            return self._absent_over_time(matrix)
        if name in ELEMENTWISE:
            return elementwise(name, await self._vector_arg(args[0]))
        if name in CALENDAR:
            if args:
                return calendar(name, await self._vector_arg(args[0]))
            now = Vector([{}], self.steps[None, :] / 1000.0, np.ones((1, self.n), dtype=bool))
            return calendar(name, now)
        if name == "round":
            vec = await self._vector_arg(args[0])
            to = (await self._scalar_arg(args[1])).values if len(args) > 1 else np.ones(self.n)
            return round_to(vec, to)
        if name in ("clamp", "clamp_min", "clamp_max"):
            vec = await self._vector_arg(args[0])
            bounds = [(await self._scalar_arg(a)).values for a in args[1:]]
            if name == "clamp":
                return clamp(vec, bounds[0], bounds[1])
            if name == "clamp_min":
                return clamp(vec, bounds[0], None)
            return clamp(vec, None, bounds[0])
        if name == "histogram_quantile":
            q = await self._scalar_arg(args[0])
            return histogram_quantile(q.values, await self._vector_arg(args[1]))
        if name == "scalar":
            vec = await self._vector_arg(args[0])
            one = vec.present.sum(axis=0) == 1
            picked = np.where(vec.present, vec.values, 0.0).sum(axis=0) if len(vec) else 0.0
            return Scalar(np.where(one, picked, np.nan))
        if name == "vector":
            s = await self._scalar_arg(args[0])
            return Vector([{}], s.values[None, :].copy(), np.ones((1, self.n), dtype=bool))
        if name == "time":
            return Scalar(self.steps / 1000.0)
        if name == "pi":
            return Scalar(np.full(self.n, np.pi))
        if name == "timestamp":
            vec = await self._vector_arg(args[0])
            ts = vec.sample_ts if vec.sample_ts is not None else np.tile(self.steps, (len(vec), 1))
            return Vector(vec.labels, ts / 1000.0, vec.present).with_labels(
                [drop_name(lb) for lb in vec.labels]
            )
        if name == "label_replace":
            vec = await self._vector_arg(args[0])
            dst, repl, src, regex = [await self._string_arg(a) for a in args[1:5]]
            return label_replace(vec, dst, repl, src, regex)
        if name == "label_join":
            vec = await self._vector_arg(args[0])
            dst, sep, *sources = [await self._string_arg(a) for a in args[1:]]
            return label_join(vec, dst, sep, sources)
        if name in ("sort", "sort_desc"):
            vec = await self._vector_arg(args[0])
            return _order_rows(vec, descending=name == "sort_desc") if self.n == 1 else vec
        if name == "absent":
            vec = await self._vector_arg(args[0])
            arg = _unwrap(args[0])
            labels = _equality_labels(arg) if isinstance(arg, pp.VectorSelector) else {}
            missing = np.logical_not(vec.present.any(axis=0)).reshape(1, self.n)
            return Vector([labels], np.ones((1, self.n)), missing)
        raise PromQLError(BAD_DATA, f"function {name}() is not supported")

    async def _range_function(self, name: str, args: list[pp.Expr]) -> Vector:
        fn, want = RANGE_FUNCTIONS[name]
        param = None
        if name == "quantile_over_time":
            param = (await self._scalar_arg(args[0])).values
            args = args[1:]
        elif name == "predict_linear":
            param = (await self._scalar_arg(args[1])).values
        points = POINTS_PER_WINDOW if name in NEEDS_POINTS else 1
        matrix = await self._matrix(args[0], want, points)
        lo, hi = matrix.flat.bounds(matrix.ref_ms, matrix.range_ms)
        values, present = fn(matrix.flat, lo, hi, matrix.ref_ms, matrix.range_ms, param)
        if name == "count_over_time" and matrix.rolled_up is not None and matrix.rolled_up.any():
            # Rollup buckets carry their sample counts: add them up.
            sums, _ = sum_over_time(matrix.flat, lo, hi, matrix.ref_ms, matrix.range_ms, None)
            values = np.where(matrix.rolled_up[:, None], sums, values)
        rows = np.flatnonzero(present.any(axis=1))
        if len(rows) == 0:
            return Vector.empty(self.n)
        keep_name = name == "last_over_time"
        labels = [
            matrix.labels[i] if keep_name else drop_name(matrix.labels[i]) for i in rows.tolist()
        ]
        return dedupe(Vector(labels, values[rows], present[rows]))

    def _absent_over_time(self, matrix: Matrix) -> Vector:
        lo, hi = matrix.flat.bounds(matrix.ref_ms, matrix.range_ms)
        missing = np.logical_not((hi > lo).any(axis=0)).reshape(1, self.n)
        return Vector([matrix.absent_labels], np.ones((1, self.n)), missing)


def _order_rows(vec: Vector, descending: bool) -> Vector:
    """Row order of an instant result (sort/sort_desc/topk/bottomk); NaN goes last."""
    if len(vec) == 0:
        return vec
    col = vec.values[:, 0]
    key = np.where(np.isnan(col), np.inf, -col if descending else col)
    order = np.argsort(key, kind="stable")
    return Vector(
        [vec.labels[i] for i in order],
        vec.values[order],
        vec.present[order],
        vec.sample_ts[order] if vec.sample_ts is not None else None,
    )


__all__ = ["Engine", "PromQLError", "Result"]
