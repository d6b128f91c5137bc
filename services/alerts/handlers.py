"""The ``alerts-evaluator`` consumer: every sample of every batch against the rules for its
name, and the absence timer that calls a silent series absent at its deadline.

This is the hot path. Rules are indexed by sample name, what each rule keeps per series
(windows, ratio counters, last-seen times) is in memory, and the only I/O is appending a
transition when one happens, always through ``_append`` (one place, whatever the cause).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from nats.js.errors import NotFoundError

from services.alerts.absence import LastSeen
from services.alerts.domain import (
    Alert,
    AlertBook,
    AlertEvent,
    CompiledRule,
    Pending,
    SampleOrigin,
    absence_fired,
    absence_recovered,
    evaluate_sample,
    held_since,
)
from services.alerts.evaluation import RuleEngine, Series
from services.alerts.watchdog import WatchdogRelay
from services.alerts.writer import AlertWriter
from shared import subjects
from shared.bus import EventBus
from shared.config import RuleConfig
from shared.consumer import ConsumerSpec, Delivery
from shared.errors import Conflict
from shared.events import (
    SELF_SOURCE,
    Event,
    SampleBatch,
    SampleBlock,
    SamplesIngested,
    decode_event,
)
from shared.selfmetrics import REGISTRY
from shared.streams import METRICS

log = logging.getLogger(__name__)

EVALUATOR = ConsumerSpec(
    durable="alerts-evaluator",
    stream=METRICS,
    filter_subject=f"{subjects.SAMPLES}.>",
    ordered=True,
)
REDECIDED_ALERTS = 5  # a transition decided again after a reload may name another alert
HOLD_LOOKBACK_SLACK_S = 60.0  # a batch's arrival and its time on the stream may differ a little
ABSENCE_RETRY_S = 1.0  # after an absence could not be recorded (the broker away)

EVALUATIONS = REGISTRY.counter(
    "vigil_alerts_evaluations_total",
    "A rule judged against one series' new value, by rule kind.",
    labels=("kind",),
)
TRANSITIONS = REGISTRY.counter(
    "vigil_alerts_transitions_total",
    "Alert transitions the evaluator wrote to the log, by event.",
    labels=("event",),
)

Decision = Callable[[], tuple[AlertEvent | None, Pending | None]]


@dataclass
class _Verdict:
    """A transition as last decided, and what stays pending after it; ``on_log`` when a
    reload showed the sample's transition already on the log."""

    event: AlertEvent | None
    pending: Pending | None
    on_log: bool = False


class SampleEvaluator:
    def __init__(
        self,
        writer: AlertWriter,
        rules: Iterable[RuleConfig],
        watchdog: WatchdogRelay,
        clock: Callable[[], float] = time.time,
    ):
        self.writer = writer
        self.engine = RuleEngine(rules)
        self.watchdog = watchdog
        self.clock = clock
        self._wake = asyncio.Event()
        # told of every change of rules, under the lock (the log rules' counter)
        self.listeners: list[Callable[[list[RuleConfig]], None]] = []

    async def use_rules(self, rules: list[RuleConfig]) -> None:
        """Judge samples by ``rules`` from the next batch on (a batch sees one rule set)."""
        async with self.writer.lock:
            self.engine.use(rules)
            for listener in self.listeners:
                listener(rules)
        self._wake.set()  # an absent_for may have changed
        log.info("rules in use", extra={"rules": len(rules)})

    # --- samples ----------------------------------------------------------------------

    async def handle(self, event: Event, delivery: Delivery) -> None:
        """Evaluate a sample batch; a redelivered batch skips what already reached the log
        (and the windows skip what they hold already)."""
        if not isinstance(event, SamplesIngested | SampleBlock):
            return
        seq = delivery.stream_seq
        engine = self.engine
        arrived = event.received_at
        async with self.writer.lock:
            book = self.writer.book
            for index, sample in event.watched(engine.watchers):
                name = sample["name"]
                origin = SampleOrigin(seq, index, event.id, event.correlation_id)
                readings = engine.read(
                    name,
                    sample["labels"],
                    sample["value"],
                    sample.get("timestamp"),
                    arrived,
                    origin,
                )
                for check, series, value in readings:
                    if value is None or book.already_applied(seq, index, series.fingerprint):
                        continue
                    if check.kind == "absence":
                        if series.fingerprint in book.open:
                            await self._data_returned(series, value, origin)
                        continue
                    await self._judge(check, series, value, arrived, origin)
            end = SampleOrigin(seq, event.count, event.id, event.correlation_id)
            for check, series, value in engine.settle():
                if value is not None and not book.already_applied(
                    seq, end.index, series.fingerprint
                ):
                    await self._judge(check, series, value, arrived, end)
        if engine.absence.sooner:
            engine.absence.sooner = False
            self._wake.set()
        if event.aggregate_id == SELF_SOURCE and isinstance(event, SamplesIngested):
            await self.watchdog.passed(event)

    async def _judge(
        self, check: CompiledRule, series: Series, value: float, at: float, origin: SampleOrigin
    ) -> None:
        EVALUATIONS.inc(kind=check.kind)
        book = self.writer.book
        fp = series.fingerprint
        limits = series.limits
        if limits is not None and limits.quiet(value) and fp not in book.open:
            if fp in book.pending:
                del book.pending[fp]  # the level broke: a hold starts again
            return  # the common case: nothing open, nothing reached, nothing to do
        event, pending = evaluate_sample(book, check, fp, series.labels, value, at, origin, limits)
        if event is None:  # no transition, no I/O
            book.set_pending(fp, pending)
            return

        def decide() -> tuple[AlertEvent | None, Pending | None]:
            return evaluate_sample(book, check, fp, series.labels, value, at, origin, limits)

        await self._append(decide, fp, origin)

    async def _data_returned(self, series: Series, value: float, origin: SampleOrigin) -> None:
        book = self.writer.book
        fp = series.fingerprint

        def decide() -> tuple[AlertEvent | None, Pending | None]:
            alert = book.open.get(fp)
            return (None if alert is None else absence_recovered(alert, value, origin)), None

        await self._append(decide, fp, origin)

    async def _append(self, decide: Decision, fp: str, origin: SampleOrigin | None) -> None:
        """Append what ``decide`` says: the one place an evaluated transition reaches the
        log, through the alert log (``AlertWriter.execute``), which decides again on a
        Conflict. ``decide`` reads the book by series, so after a reload it may name
        nothing any more, or another alert (the one it named is over), which is then
        written in turn. ``origin`` is the sample behind it (None for a deadline), by
        which a transition already on the log is recognised. What stays pending is set
        once the outcome is known."""
        book = self.writer.book
        verdict = _Verdict(*decide())
        for _ in range(REDECIDED_ALERTS):
            if verdict.event is None:
                book.set_pending(fp, verdict.pending)
                return
            appended = await self._write(verdict.event.aggregate_id, verdict, decide, fp, origin)
            if verdict.on_log:
                return
            if appended:
                TRANSITIONS.inc(event=type(verdict.event).__name__)
                book.set_pending(fp, verdict.pending)
                return
        raise Conflict(f"alert {fp} kept changing; giving up on this delivery")

    async def _write(
        self,
        target: str,
        verdict: _Verdict,
        decide: Decision,
        fp: str,
        origin: SampleOrigin | None,
    ) -> bool:
        """Append ``verdict.event`` on its alert ``target``, decided on the book as it
        stands (no read: a fired alert's id is new). After a Conflict the verdict is made
        again on the reloaded book; only an event on ``target`` is appended here."""
        book = self.writer.book
        again = False

        def on(_: Alert | None) -> list[AlertEvent]:
            nonlocal again
            if again:
                if origin is not None and book.already_applied(origin.seq, origin.index, fp):
                    verdict.on_log = True
                    return []
                verdict.event, verdict.pending = decide()
            again = True
            event = verdict.event
            return [event] if event is not None and event.aggregate_id == target else []

        outcome = await self.writer.execute(target, on, known=self.writer.held(target))
        return bool(outcome.appended)

    # --- absence ----------------------------------------------------------------------

    async def absence_timer(self) -> None:
        """Sleep until the earliest absence deadline (or until a sample arms an earlier
        one), then fire what is due. Never looks at series that are not due."""
        while True:
            deadline = self.engine.absence.next_deadline()
            self._wake.clear()
            wait = None if deadline is None else deadline - self.clock()
            if wait is None or wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            if not await self.fire_absences():
                await asyncio.sleep(ABSENCE_RETRY_S)

    async def fire_absences(self, now: float | None = None) -> bool:
        """Fire 'no data' for every series due at ``now`` (default: the clock). False when
        one could not be recorded; it stays due and is tried again."""
        async with self.writer.lock:
            moment = self.clock() if now is None else now
            due = self.engine.absence.due(moment)
            for index, seen in enumerate(due):
                check = self.engine.rules.get(seen.rule)
                if check is None or check.kind != "absence":
                    continue
                try:
                    await self._append(self._absent(check, seen, moment), seen.fingerprint, None)
                except Exception:
                    log.warning(
                        "absence not recorded; trying again",
                        exc_info=True,
                        extra={"rule": seen.rule, "fingerprint": seen.fingerprint},
                    )
                    for again in due[index:]:
                        self.engine.absence.observe(again)
                    return False
        return True

    def _absent(self, check: CompiledRule, seen: LastSeen, now: float) -> Decision:
        book = self.writer.book
        fp = seen.fingerprint
        since = (seen.origin.seq, seen.origin.index)

        def decide() -> tuple[AlertEvent | None, Pending | None]:
            if fp in book.open or book.changed_by_sample.get(fp, (0, 0)) > since:
                return None, None  # already firing, or seen after ``seen`` per the log
            silent = max(0.0, now - seen.at)
            return absence_fired(check, fp, seen.labels, silent, seen.origin), None

        return decide

    # --- restart ----------------------------------------------------------------------

    async def restore_holds(self, bus: EventBus) -> int:
        """Rebuild what the rules keep from samples evaluated before this process started:
        ``for:`` holds, windows, ratio counters and last-seen times.

        Without this a restart would start every hold and window again (a service
        restarted more often than a rule's ``for`` would never fire it), and a series
        that fell silent while the service was down would never be called absent. Only
        samples the evaluator had acknowledged are replayed (the rest come again live),
        from as far back as the longest hold, window or absence before the last of them.
        Returns how many series have a hold.
        """
        longest = self.engine.longest_lookback_s
        if longest <= 0:
            return 0
        try:
            info = await bus.js.consumer_info(METRICS.name, EVALUATOR.durable)
        except NotFoundError:
            return 0  # first start: nothing was evaluated yet
        end = info.ack_floor.stream_seq if info.ack_floor is not None else 0
        if end <= 0:
            return 0
        last = await _arrival(bus, end)
        since = datetime.fromtimestamp(last, UTC) - timedelta(
            seconds=longest + HOLD_LOOKBACK_SLACK_S
        )
        async with self.writer.lock:
            book = self.writer.book
            replay = bus.replay(
                METRICS.name, EVALUATOR.filter_subject, start_time=since, end_seq=end
            )
            async for recorded in replay:
                if isinstance(recorded.event, SamplesIngested | SampleBlock):
                    self._restore(book, recorded.event, recorded.seq)
        self.engine.absence.sooner = False
        self._wake.set()
        log.info(
            "rule state restored",
            extra={
                "holds": len(book.pending),
                "watched_for_absence": len(self.engine.absence),
                "through_seq": end,
            },
        )
        return len(book.pending)

    def _restore(self, book: AlertBook, batch: SampleBatch, seq: int) -> None:
        arrived = batch.received_at
        for index, sample in batch.watched(self.engine.watchers):
            origin = SampleOrigin(seq, index, batch.id, batch.correlation_id)
            readings = self.engine.read(
                sample["name"],
                sample["labels"],
                sample["value"],
                sample.get("timestamp"),
                arrived,
                origin,
            )
            for _check, series, value in readings:
                _hold(book, series, value, origin, arrived)
        end = SampleOrigin(seq, batch.count, batch.id, batch.correlation_id)
        for _check, series, value in self.engine.settle():
            _hold(book, series, value, end, arrived)


def _hold(
    book: AlertBook, series: Series, value: float | None, origin: SampleOrigin, arrived: float
) -> None:
    """Carry a ``for:`` hold on by one past value, unless the series changed after it."""
    limits = series.limits
    if value is None or limits is None or not limits.for_s:
        return
    fp = series.fingerprint
    if book.changed_since(fp, origin.seq, origin.index, arrived):
        return
    pending = held_since(limits, book.open.get(fp), book.pending.get(fp), value, arrived)
    book.set_pending(fp, pending)


async def _arrival(bus: EventBus, seq: int) -> float:
    """When the batch at ``seq`` arrived (now, when it cannot be read)."""
    try:
        raw = await bus.js.get_msg(METRICS.name, seq)
        event = decode_event(raw.data) if raw.data else None
    except Exception:
        event = None
    now = time.time()
    return min(event.received_at, now) if isinstance(event, SamplesIngested | SampleBlock) else now
