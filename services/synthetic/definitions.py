"""Check definitions on the log: load them at start and append with optimistic concurrency."""

from __future__ import annotations

import logging
from collections.abc import Callable

from nats.js.errors import NotFoundError

from services.synthetic.domain import CheckCatalog, reconcile
from shared import subjects
from shared.bus import EventBus
from shared.config import CheckConfig
from shared.errors import Conflict
from shared.events import CheckRunRecorded, Event, decode_event
from shared.streams import SYNTHETIC

log = logging.getLogger(__name__)

MAX_CONFLICT_RETRIES = 5

Decision = Callable[[CheckCatalog], Event | None]


class CheckDefinitionLog:
    """The catalog kept in step with ``synthetic.checks.<id>`` on the SYNTHETIC stream."""

    def __init__(self, catalog: CheckCatalog, bus: Callable[[], EventBus]):
        self.catalog = catalog
        self._bus = bus

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

    async def reload(self, check_id: str) -> None:
        self.catalog.forget(check_id)
        for recorded in await self._bus().read_subject(subjects.check_definition(check_id)):
            self.catalog.apply(recorded.event, recorded.seq)

    async def append(self, check_id: str, decide: Decision) -> tuple[Event | None, int]:
        """Decide against the current state and append; on a clash reload and decide again.

        Returns the appended event (None when nothing needed changing) and the
        subject's last sequence.
        """
        for _ in range(MAX_CONFLICT_RETRIES):
            event = decide(self.catalog)
            position = self.catalog.position(check_id)
            if event is None:
                return None, position.last_seq
            try:
                seq = await self._bus().publish(
                    subjects.check_definition(check_id),
                    event,
                    expected_last_subject_seq=position.last_seq,
                )
            except Conflict:
                log.info("check definition changed concurrently", extra={"check_id": check_id})
                await self.reload(check_id)
                continue
            self.catalog.apply(event, seq)
            return event, seq
        raise Conflict(f"check {check_id} keeps changing concurrently; try again")

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
