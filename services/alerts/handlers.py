"""The ``alerts-evaluator`` consumer: every sample of every batch against the rules for its name.

This is the hot path. Rules are indexed by metric name and all state is in memory,
so the only I/O is publishing a transition when one happens.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from services.alerts.domain import (
    CompiledRule,
    SampleOrigin,
    evaluate_sample,
    fingerprint,
    index_rules,
)
from services.alerts.writer import AlertWriter
from shared import subjects
from shared.config import RuleConfig
from shared.consumer import ConsumerSpec, Delivery
from shared.errors import Conflict
from shared.events import Event, Sample, SamplesIngested
from shared.streams import METRICS

log = logging.getLogger(__name__)

EVALUATOR = ConsumerSpec(
    durable="alerts-evaluator",
    stream=METRICS,
    filter_subject=f"{subjects.SAMPLES}.>",
    ordered=True,
)
CONFLICT_ATTEMPTS = 5


class SampleEvaluator:
    def __init__(self, writer: AlertWriter, rules: Iterable[RuleConfig]):
        self.writer = writer
        self.rules = index_rules(rules)

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
            for index, sample in enumerate(event.samples):
                checks = self.rules.get(sample["name"])
                if checks is None:
                    continue
                stamp = sample["timestamp"]
                at = event.received_at if stamp is None else stamp
                for check in checks:
                    if check.filters and not check.matches(sample["labels"]):
                        continue
                    fp = fingerprint(check.rule.name, sample["labels"])
                    if book.already_applied(seq, index, fp):
                        continue
                    await self._evaluate(check, fp, sample, at, event, seq, index)

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
