"""The ``alerts-logs`` consumer: log lines counted against the log rules, the counts judged
as a sample rule's value is, and the timer that moves the windows while no line comes.

A log rule's transitions go through the evaluator's ``_append`` and the alert writer, so
silences, maintenance windows, inhibition, flapping and routing treat them as any other
alert. Counting is exactly once: the consumer is ordered and remembers the last LOGS
sequence it counted, so a redelivered batch is judged again but never counted twice; a
restart counts again, from the stream, the lines the windows still hold up to the last
batch acknowledged (the rest come again live), and the ``for:`` holds they were under.

Alert events carry ``source_seq`` 0 (that field places samples on METRICS, which these
are not); the batch that caused one is its ``causation_id``, and a fired alert's id
derives from the LOGS position of the line that brought the count up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.js.errors import NotFoundError

from services.alerts.domain import (
    AlertEvent,
    Pending,
    SampleOrigin,
    evaluate_sample,
    event_id_for,
    fingerprint,
    held_since,
)
from services.alerts.handlers import SampleEvaluator
from services.alerts.logcount import LineSelector, WindowCount
from services.alerts.rulecompile import CompiledRule, Thresholds
from shared import subjects
from shared.bus import EventBus
from shared.consumer import ConsumerSpec, Delivery
from shared.events import AlertFired, Event, LogsIngested, decode_event, derived_id
from shared.logquery import tokens
from shared.ruleconfig import RuleConfig
from shared.selfmetrics import REGISTRY
from shared.streams import LOGS

log = logging.getLogger(__name__)

LOG_EVALUATOR = ConsumerSpec(
    durable="alerts-logs",
    stream=LOGS,
    filter_subject=f"{subjects.LOG_ENTRIES}.>",
    ordered=True,
)
MAX_TICK_S = 1.0  # the windows move at least this often while anything is counted
MIN_TICK_S = 0.05
RESTORE_SLACK_S = 60.0  # a batch's arrival and its time on the stream may differ a little
TICK_RETRY_S = 1.0  # after a transition could not be recorded (the broker away)
MAX_SERIES_PER_RULE = 10_000  # past it, lines of new series are not counted (and logged)

LINES_COUNTED = REGISTRY.counter(
    "vigil_alerts_log_lines_counted_total",
    "Log lines that matched a log rule and were counted in its window.",
)


@dataclass
class LogSeries:
    """One series of one log rule: its alert identity, its window, and the newest line
    counted (a fired alert's id derives from it)."""

    fingerprint: str
    labels: dict[str, str]  # the alert's: the by values + the rule's static labels
    limits: Thresholds
    window: WindowCount
    last: SampleOrigin = field(default_factory=lambda: SampleOrigin(0, 0, "", ""))


class LogRule:
    """One log rule with its series."""

    def __init__(self, check: CompiledRule):
        assert check.rule.logs is not None and check.rule.window is not None
        self.check = check
        self.selector = LineSelector(check.rule.logs)
        self.span = check.rule.window
        self.series: dict[tuple[tuple[str, str], ...], LogSeries] = {}
        self.full = False

    def count(self, entry: Mapping[str, Any], at: float, origin: SampleOrigin) -> LogSeries | None:
        labels = self.selector.series_labels(entry)
        key = tuple(sorted(labels.items()))
        series = self.series.get(key)
        if series is None:
            if len(self.series) >= MAX_SERIES_PER_RULE:
                if not self.full:
                    log.warning("log rule has too many series", extra={"rule": self.check.name})
                    self.full = True
                return None
            series = LogSeries(
                fingerprint(self.check.name, labels),
                self.check.alert_labels(labels),
                self.check.thresholds_for(labels),
                WindowCount(self.span),
            )
            self.series[key] = series
        series.window.add(at)
        series.last = origin
        return series

    def carry(self, old: LogRule) -> None:
        """Keep the counts of the same rule before a change of its thresholds or labels."""
        for key, series in old.series.items():
            labels = dict(key)
            series.limits = self.check.thresholds_for(labels)
            series.labels = self.check.alert_labels(labels)
            self.series[key] = series


def _carry_key(rule: RuleConfig) -> tuple[object, ...]:
    return (rule.logs, rule.window)


class LogEvaluator:
    def __init__(
        self,
        evaluator: SampleEvaluator,
        rules: Iterable[RuleConfig],
        clock: Callable[[], float] = time.time,
    ):
        self.evaluator = evaluator
        self.writer = evaluator.writer
        self.clock = clock
        self.rules: dict[str, LogRule] = {}
        self.counted_seq = 0  # the last LOGS batch counted: a redelivery is not counted again
        self._wake = asyncio.Event()
        self.use(list(rules))

    def use(self, rules: list[RuleConfig]) -> None:
        """Count by ``rules`` from the next batch on; a rule whose selector and window
        stay keeps its counts."""
        old = self.rules
        made: dict[str, LogRule] = {}
        for rule in rules:
            if rule.logs is None:
                continue
            fresh = LogRule(CompiledRule.of(rule))
            before = old.get(rule.name)
            if before is not None and _carry_key(before.check.rule) == _carry_key(rule):
                fresh.carry(before)
            made[rule.name] = fresh
        self.rules = made
        self._wake.set()

    @property
    def longest_window_s(self) -> float:
        return max((r.span for r in self.rules.values()), default=0.0)

    # --- lines --------------------------------------------------------------------------

    def _count(self, batch: LogsIngested, seq: int) -> list[tuple[LogRule, LogSeries]]:
        """Count the batch's matching lines; the series it touched, each once."""
        touched: dict[int, tuple[LogRule, LogSeries]] = {}
        if not self.rules:
            return []
        arrived = batch.received_at
        oldest = arrived - self.longest_window_s
        for index, entry in enumerate(batch.entries):
            stamped = entry.get("timestamp")
            at = stamped if stamped is not None and stamped < arrived else arrived
            if at <= oldest:
                continue
            words: list[str] | None = None
            for rule in self.rules.values():
                if at <= arrived - rule.span:
                    continue
                if rule.selector.query is not None and words is None:
                    words = tokens(entry["message"])
                if not rule.selector.matches(entry, words):
                    continue
                origin = SampleOrigin(seq, index, batch.id, batch.correlation_id)
                series = rule.count(entry, at, origin)
                if series is not None:
                    LINES_COUNTED.inc()
                    touched[id(series)] = (rule, series)
        return list(touched.values())

    async def handle(self, event: Event, delivery: Delivery) -> None:
        """Count a batch (once) and judge the series it touched at its arrival."""
        if not isinstance(event, LogsIngested):
            return
        seq = delivery.stream_seq
        async with self.writer.lock:
            if seq > self.counted_seq:
                touched = self._count(event, seq)
                self.counted_seq = seq
            else:  # a redelivery: counted already; judged again (its transition may be missing)
                touched = [
                    (rule, series)
                    for rule in self.rules.values()
                    for series in rule.series.values()
                    if series.last.seq == seq
                ]
            for rule, series in touched:
                await self._judge(rule, series, event.received_at)
        self._wake.set()

    async def _judge(self, rule: LogRule, series: LogSeries, now: float) -> None:
        check = rule.check
        book = self.writer.book
        fp = series.fingerprint
        value = float(series.window.count(now))
        if series.limits.quiet(value) and fp not in book.open:
            book.set_pending(fp, None)  # the count fell back: a hold starts again
            return
        origin = series.last

        def decide() -> tuple[AlertEvent | None, Pending | None]:
            event, pending = evaluate_sample(
                book, check, fp, series.labels, value, now, origin, series.limits
            )
            ended = book.changed_by_command_at.get(fp, 0.0)
            return _off_metrics(event, fp, origin, ended), pending

        await self.evaluator._append(decide, fp, None)

    # --- the windows move ----------------------------------------------------------------

    def tick_s(self) -> float:
        shortest = min((r.span for r in self.rules.values()), default=MAX_TICK_S * 10)
        return min(MAX_TICK_S, max(MIN_TICK_S, shortest / 20))

    async def timer(self) -> None:
        """Judge every counted series again as its window moves: a count falls back under
        the threshold (the alert resolves) or a ``for`` hold completes without new lines."""
        while True:
            self._wake.clear()
            if not any(r.series for r in self.rules.values()):
                await self._wake.wait()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick_s())
            if not await self.tick():
                await asyncio.sleep(TICK_RETRY_S)

    async def tick(self, now: float | None = None) -> bool:
        """Judge every series at ``now`` (default: the clock) and forget the empty ones
        that nothing is open or pending on. False when a transition could not be
        recorded (it is tried again at the next tick)."""
        async with self.writer.lock:
            moment = self.clock() if now is None else now
            book = self.writer.book
            for rule in list(self.rules.values()):
                emptied = []
                for key, series in list(rule.series.items()):
                    try:
                        await self._judge(rule, series, moment)
                    except Exception:
                        log.warning(
                            "log rule transition not recorded; trying again",
                            exc_info=True,
                            extra={"rule": rule.check.name, "fingerprint": series.fingerprint},
                        )
                        return False
                    series.window.evict(moment)
                    fp = series.fingerprint
                    if not series.window and fp not in book.open and fp not in book.pending:
                        emptied.append(key)
                for key in emptied:
                    del rule.series[key]
        return True

    # --- explain ---------------------------------------------------------------------------

    def explain(self, rule_name: str, labels: Mapping[str, str]) -> dict[str, Any] | None:
        """The count of a log rule's series (given by its alert labels) in the window now."""
        rule = self.rules.get(rule_name)
        if rule is None:
            return None
        wanted = {k: v for k, v in labels.items() if k not in dict(rule.check.set_labels)}
        series = rule.series.get(tuple(sorted(wanted.items())))
        now = self.clock()
        count = 0 if series is None else series.window.count(now)
        limits = series.limits if series is not None else rule.check.thresholds_for(wanted)
        return {
            "count": count,
            "window_s": rule.span,
            "since": now - rule.span,
            "until": now,
            "warning": limits.warning,
            "critical": limits.critical,
            "by": list(rule.selector.by),
        }

    # --- restart -----------------------------------------------------------------------------

    async def restore(self, bus: EventBus) -> int:
        """Count again the lines still in the windows, from batches this consumer had
        acknowledged before the restart; returns how many series have a count."""
        longest = self.longest_window_s
        if longest <= 0:
            return 0
        try:
            info = await bus.js.consumer_info(LOGS.name, LOG_EVALUATOR.durable)
        except NotFoundError:
            return 0
        end = info.ack_floor.stream_seq if info.ack_floor is not None else 0
        if end <= 0:
            return 0
        last = await _arrival(bus, end)
        since = datetime.fromtimestamp(last, UTC) - timedelta(seconds=longest + RESTORE_SLACK_S)
        async with self.writer.lock:
            async for recorded in bus.replay(
                LOGS.name, LOG_EVALUATOR.filter_subject, start_time=since, end_seq=end
            ):
                if isinstance(recorded.event, LogsIngested) and recorded.seq > self.counted_seq:
                    touched = self._count(recorded.event, recorded.seq)
                    self.counted_seq = recorded.seq
                    for _rule, series in touched:
                        self._hold(series, recorded.event.received_at)
        restored = sum(len(r.series) for r in self.rules.values())
        self._wake.set()
        log.info("log rule counts restored", extra={"series": restored, "through_seq": end})
        return restored

    def _hold(self, series: LogSeries, at: float) -> None:
        """Carry a ``for:`` hold on by the count as a past batch left it, unless the
        series' alert ended after that batch (its hold ended with it)."""
        book = self.writer.book
        fp = series.fingerprint
        if not series.limits.for_s or at <= book.changed_by_command_at.get(fp, 0.0):
            return
        value = float(series.window.count(at))
        pending = held_since(series.limits, book.open.get(fp), book.pending.get(fp), value, at)
        book.set_pending(fp, pending)


def _off_metrics(
    event: AlertEvent | None, fp: str, origin: SampleOrigin, ended: float
) -> AlertEvent | None:
    """The event as a log rule's: no METRICS position, and a fired alert's id derived from
    the LOGS position of its newest line (never one a sample could derive) and from when
    the series' last alert ended (``ended``, as the log has it): the timer may fire again
    on the same lines after an alert was resolved by hand, and that is another alert."""
    if event is None:
        return None
    update: dict[str, Any] = {"source_seq": 0, "source_index": 0}
    if isinstance(event, AlertFired):
        alert_id = derived_id("log-alert", fp, origin.seq, origin.index, ended)
        update.update(aggregate_id=alert_id, id=event_id_for(alert_id, 1, "fired"))
    return event.model_copy(update=update)


async def _arrival(bus: EventBus, seq: int) -> float:
    """When the batch at ``seq`` arrived (now, when it cannot be read)."""
    try:
        raw = await bus.js.get_msg(LOGS.name, seq)
        event = decode_event(raw.data) if raw.data else None
    except Exception:
        event = None
    now = time.time()
    return min(event.received_at, now) if isinstance(event, LogsIngested) else now
