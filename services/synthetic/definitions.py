"""Check definitions on the log: load them at start, change them through the shared
load, decide, append loop (shared.aggregate)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from nats.js.errors import NotFoundError

from services.synthetic.domain import CheckCatalog, CheckDefinition, reconcile
from shared import subjects
from shared.aggregate import AggregateLog, BookMemory, Snapshot
from shared.bus import EventBus
from shared.config import CheckConfig
from shared.events import CheckConfigured, CheckRunRecorded, Event, decode_event
from shared.streams import SYNTHETIC

log = logging.getLogger(__name__)

Decision = Callable[[CheckCatalog], Event | None]


class CheckDefinitionLog:
    """The catalog kept in step with ``synthetic.checks.<id>`` on the SYNTHETIC stream."""

    def __init__(self, catalog: CheckCatalog, bus: Callable[[], EventBus]):
        self.catalog = catalog
        self._bus = bus
        # the catalog holds every definition since ``load``: it is the log's memory
        self.log: AggregateLog[CheckDefinition | None] = AggregateLog(
            bus,
            subjects.check_definition,
            None,
            _evolve,
            noun="check",
            memory=BookMemory(self._recall, catalog.forget, catalog.apply),
        )

    def _recall(self, check_id: str) -> Snapshot[CheckDefinition | None]:
        return Snapshot(
            self.catalog.definitions.get(check_id), self.catalog.position(check_id).last_seq
        )

    async def load(self) -> None:
        """Fold every definition event, then the last run of each check for its failure count."""
        bus = self._bus()
        async for recorded in bus.replay(SYNTHETIC.name, f"{subjects.CHECK_DEFINITIONS}.>"):
            self.catalog.apply(recorded.event, recorded.seq)
        for check_id in list(self.catalog.definitions):
            try:
                raw = await bus.js.get_last_msg(
                    SYNTHETIC.name, subjects.check_result(check_id), direct=True
                )
            except NotFoundError:
                continue
            if raw.data is None:
                continue
            last = decode_event(raw.data)
            if isinstance(last, CheckRunRecorded):
                self.catalog.record_run(last)
        log.info(
            "loaded check definitions",
            extra={"checks": len(self.catalog.definitions)},
        )

    async def append(self, check_id: str, decide: Decision) -> tuple[Event | None, int]:
        """Decide against the current state and append; on a clash reload and decide again.

        Returns the appended event (None when nothing needed changing) and the
        subject's last sequence.
        """
        outcome = await self.log.execute(check_id, lambda _: _listed(decide(self.catalog)))
        event = outcome.appended[-1].event if outcome.appended else None
        return event, outcome.last_seq

    async def reconcile(self, configured: list[CheckConfig]) -> int:
        """Make the log match the config file; returns how many events that took."""
        appended = 0
        for planned in reconcile(self.catalog, configured):
            check_id = planned.aggregate_id

            def decide(catalog: CheckCatalog, check_id: str = check_id) -> Event | None:
                return next(
                    (e for e in reconcile(catalog, configured) if e.aggregate_id == check_id),
                    None,
                )

            event, _ = await self.append(check_id, decide)
            appended += event is not None
        log.info("reconciled checks with config", extra={"events": appended})
        return appended


def _evolve(_: CheckDefinition | None, event: Event) -> CheckDefinition | None:
    return CheckDefinition.from_event(event) if isinstance(event, CheckConfigured) else None


def _listed(event: Event | None) -> list[Event]:
    return [] if event is None else [event]
