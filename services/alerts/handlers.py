"""The ``alerts-evaluator`` consumer: every sample of every batch against the rules for its name.

This is the hot path. Rules are indexed by metric name and all state is in memory,
so the only I/O is publishing a transition when one happens.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from nats.js.errors import NotFoundError

from services.alerts.domain import (
    AlertBook,
    CompiledRule,
    SampleOrigin,
    evaluate_sample,
    fingerprint,
    held_since,
    index_rules,
)
from services.alerts.watchdog import WatchdogRelay
from services.alerts.writer import AlertWriter
from shared import subjects
from shared.bus import EventBus
from shared.config import RuleConfig
from shared.consumer import ConsumerSpec, Delivery
from shared.errors import Conflict
from shared.events import SELF_SOURCE, Event, Sample, SamplesIngested
from shared.streams import METRICS

log = logging.getLogger(__name__)

EVALUATOR = ConsumerSpec(
    durable="alerts-evaluator",
    stream=METRICS,
    filter_subject=f"{subjects.SAMPLES}.>",
    ordered=True,
)
CONFLICT_ATTEMPTS = 5
HOLD_LOOKBACK_SLACK_S = 60.0  # a batch's arrival and its time on the stream may differ a little


class SampleEvaluator:
    def __init__(self, writer: AlertWriter, rules: Iterable[RuleConfig], watchdog: WatchdogRelay):
        self.writer = writer
        self.rules = index_rules(rules)
        self.watchdog = watchdog

    async def use_rules(self, rules: list[RuleConfig]) -> None:
        """Judge samples by ``rules`` from the next batch on (a batch sees one rule set)."""
        index = index_rules(rules)
        async with self.writer.lock:
            self.rules = index
        log.info("rules in use", extra={"rules": len(rules)})

    async def handle(self, event: Event, delivery: Delivery) -> None:
        """Evaluate a sample batch; a redelivered batch skips what already reached the log."""
        if not isinstance(event, SamplesIngested):
            return
        seq = delivery.stream_seq
        async with self.writer.lock:
            book = self.writer.book
            if seq < book.position[0]:
                log.debug("batch already evaluated", extra={"stream_seq": seq})
                return
            for index, sample, at, check, fp in self._watched(event):
                if not book.already_applied(seq, index, fp):
                    await self._evaluate(check, fp, sample, at, event, seq, index)
        if event.aggregate_id == SELF_SOURCE:
            await self.watchdog.passed(event)

    def _watched(
        self, batch: SamplesIngested
    ) -> Iterator[tuple[int, Sample, float, CompiledRule, str]]:
        """Each (sample, rule) pair of a batch where the rule watches the sample: with the
        sample's position in the batch, its time, and the series it belongs to.

        The time is the batch's arrival, not the sample's own timestamp: ``for:`` holds
        are measured against it, and a client's timestamps must not shorten them.
        """
        at = batch.received_at
        for index, sample in enumerate(batch.samples):
            checks = self.rules.get(sample["name"])
            if checks is None:
                continue
            for check in checks:
                if check.filters and not check.matches(sample["labels"]):
                    continue
                yield index, sample, at, check, fingerprint(check.rule.name, sample["labels"])

    async def restore_holds(self, bus: EventBus) -> int:
        """Rebuild the ``for:`` holds from samples evaluated before this process started.

        Holds live in memory; without this a restart would start every hold again, and
        a service restarted more often than a rule's ``for`` would never fire it. Only
        samples the evaluator had acknowledged are replayed (the rest come again live),
        from as far back as the longest hold, and only those after each series' last
        change. Returns how many series have a hold.
        """
        longest = max((c.rule.for_s for cs in self.rules.values() for c in cs), default=0.0)
        if longest <= 0:
            return 0
        try:
            info = await bus.js.consumer_info(METRICS.name, EVALUATOR.durable)
        except NotFoundError:
            return 0  # first start: nothing was evaluated yet
        end = info.ack_floor.stream_seq if info.ack_floor is not None else 0
        if end <= 0:
            return 0
        since = datetime.now(UTC) - timedelta(seconds=longest + HOLD_LOOKBACK_SLACK_S)
        async with self.writer.lock:
            book = self.writer.book
            replay = bus.replay(
                METRICS.name, EVALUATOR.filter_subject, start_time=since, end_seq=end
            )
            async for recorded in replay:
                if isinstance(recorded.event, SamplesIngested):
                    self._hold(book, recorded.event, recorded.seq)
        log.info("for-holds restored", extra={"series": len(book.pending), "through_seq": end})
        return len(book.pending)

    def _hold(self, book: AlertBook, batch: SamplesIngested, seq: int) -> None:
        for index, sample, at, check, fp in self._watched(batch):
            if check.rule.for_s and not book.changed_since(fp, seq, index, batch.received_at):
                pending = held_since(
                    check, book.open.get(fp), book.pending.get(fp), sample["value"], at
                )
                book.set_pending(fp, pending)

    async def _evaluate(
        self,
        check: CompiledRule,
        fp: str,
        sample: Sample,
        at: float,
        batch: SamplesIngested,
        seq: int,
        index: int,
    ) -> None:
        book = self.writer.book
        value = sample["value"]
        origin = SampleOrigin(seq, index, batch.id, batch.correlation_id)
        for _ in range(CONFLICT_ATTEMPTS):
            event, pending = evaluate_sample(book, check, fp, sample["labels"], value, at, origin)
            if event is None:
                book.set_pending(fp, pending)
                return
            alert = book.get(event.aggregate_id)
            expected = 0 if alert is None else book.last_seq[alert.alert_id]
            try:
                await self.writer.append(event, expected)
            except Conflict:
                log.warning(
                    "alert changed concurrently; reloading",
                    extra={"alert_id": event.aggregate_id, "stream_seq": seq, "index": index},
                )
                await self.writer.reload(event.aggregate_id)
                if book.already_applied(seq, index, fp):
                    return
                continue
            book.set_pending(fp, pending)
            return
        raise Conflict(f"alert for {check.rule.name} kept changing; giving up on this delivery")
