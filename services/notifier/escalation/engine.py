"""Runs escalations: starts them from alert events, fires their steps when due, stops them.

Every change is first an event on PAGING, then folded into the table (see store.py),
and every event id is derived from (alert, policy, generation, round, step, kind). The
engine never decides anything from memory alone:

- a step fires only if the table says it is the one pending, and before the first
  decision about an escalation after a start the engine folds that escalation's events
  from the stream, so a StepFired published just before a crash is seen and not fired
  again, however long the notifier was down;
- what comes after a fired step (the next StepScheduled, or EscalationStopped
  "exhausted") is derived from the table, so a crash between the two is finished on the
  next start with the same ids;
- JetStream's duplicate window swallows a re-publish with the same id in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier.escalation.directory import EscalationDirectory
from services.notifier.escalation.store import NOWHERE, Escalation, EscalationStore
from services.notifier.escalation.targets import resolve
from shared import subjects
from shared.bus import EventBus
from shared.events import (
    AlertAcknowledged,
    AlertEscalated,
    AlertEvent,
    AlertFired,
    AlertResolved,
    AlertSettled,
    AlertSuppressionChanged,
    Event,
)
from shared.events.base import derived_id, utcnow
from shared.events.paging import (
    EscalationEvent,
    EscalationStarted,
    EscalationStepFired,
    EscalationStepScheduled,
    EscalationStopped,
)
from shared.pagingconfig import EscalationPolicyConfig
from shared.streams import PAGING
from shared.suppression import muted, pages_now

log = logging.getLogger(__name__)

TICK_S = 0.25  # the longest the timer loop sleeps: a due step fires well within 1 s
RETRY_S = 1.0  # after a failed firing (the log unreachable), before the next try


def escalation_id(alert_id: str, policy: str, generation: int) -> str:
    return derived_id("escalation", alert_id, policy, generation)


def event_id(alert_id: str, policy: str, generation: int, round: int, step: int, kind: str) -> str:
    return derived_id("escalation-event", alert_id, policy, generation, round, step, kind)


class EscalationEngine:
    def __init__(
        self,
        bus: Callable[[], EventBus],
        engine: AsyncEngine,
        directory: EscalationDirectory,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.bus = bus
        self.store = EscalationStore(engine)
        self.directory = directory
        self.clock = clock
        self._timers: dict[str, tuple[datetime, tuple[int, int]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}  # by escalation
        self._alert_locks: dict[str, asyncio.Lock] = {}
        self._wake = asyncio.Event()
        self._running = False

    # --- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Create the tables, catch up with the stream, re-arm every pending step."""
        await self.store.create()
        for escalation in await self.store.running():
            async with self._lock(escalation.id):
                await self._catch_up(escalation.id)
                await self._advance(escalation.id)
        self._running = True
        self._wake.set()

    async def stop(self) -> None:
        self._running = False
        self._timers.clear()
        self._wake.set()

    async def rebuild(self) -> None:
        """Drop the table and fold the whole PAGING stream into it again."""
        await self.store.reset()
        async for recorded in self.bus().replay(PAGING.name):
            await self.store.fold(recorded.event)

    async def run_timers(self) -> None:
        """Fire due steps until cancelled; a step due while the notifier was down fires at
        once."""
        while True:
            now = self.clock()
            due = sorted(
                (at, escalation, position)
                for escalation, (at, position) in self._timers.items()
                if at <= now
            )
            failed = False
            for _, escalation, position in due:
                try:
                    await self._fire(escalation, position)
                except Exception as exc:
                    failed = True
                    log.warning(
                        "escalation step not fired; trying again",
                        extra={"escalation": escalation, "error": repr(exc)},
                    )
            self._wake.clear()
            if failed:
                await asyncio.sleep(RETRY_S)
                continue
            upcoming = min((at for at, _ in self._timers.values()), default=None)
            wait = TICK_S
            if upcoming is not None:
                wait = min(TICK_S, max(0.0, (upcoming - self.clock()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    # --- inputs ---------------------------------------------------------------

    async def on_alert_event(self, event: AlertEvent, policy: str | None) -> None:
        """Called for every alert event, with the policy its route picked (or None).

        Idempotent: a redelivered event changes nothing more. The events of one alert are
        handled one at a time; once the alert is acknowledged (even when the trigger comes
        late) only the acknowledgement's timeout pages again.
        """
        async with self._alert_locks.setdefault(event.aggregate_id, asyncio.Lock()):
            await self._on_alert_event(event, policy)
        if isinstance(event, AlertResolved):
            self._alert_locks.pop(event.aggregate_id, None)

    async def _on_alert_event(self, event: AlertEvent, policy: str | None) -> None:
        alert_id = event.aggregate_id
        if isinstance(event, AlertResolved):
            await self.store.mark_resolved(alert_id, event.time)
            for escalation in await self.store.for_alert(alert_id):
                if escalation.running:
                    await self._stop_locked(escalation.id, "resolved", event.by)
            return
        if await self.store.resolved(alert_id):
            return  # a late trigger for an alert that is over
        if isinstance(event, AlertAcknowledged):
            await self.store.mark_acknowledged(alert_id, event.version)
            # a muted alert is not paged again when the acknowledgement times out
            await self._acknowledged(event, restart=not muted(event))
            return
        if muted(event):
            await self._stop_all(alert_id, "suppressed")
            return
        if isinstance(event, AlertFired | AlertEscalated):
            if policy is None or await self.store.acknowledged_version(alert_id):
                return  # someone answered: only the ack timeout pages again
            config = self.directory.policies().get(policy)
            if config is None:
                log.warning(
                    "alert routed to an unknown escalation policy",
                    extra={"alert_id": alert_id, "policy": policy},
                )
                return
            summary = event.summary if isinstance(event, AlertFired) else ""
            await self._begin(event, config, 0, event.time, summary)
        elif isinstance(event, AlertSuppressionChanged | AlertSettled) and policy is not None:
            await self._unmuted(event, policy)

    async def _unmuted(self, event: AlertSuppressionChanged | AlertSettled, policy: str) -> None:
        """No reason left to keep the alert quiet: a firing one is paged from now (a new
        generation), an acknowledged one from its acknowledgement timeout on."""
        config = self.directory.policies().get(policy)
        if config is None:
            return
        known = await self.store.for_alert(event.aggregate_id)
        if any(e.cause == event.id for e in known):
            return  # this event was handled already
        same = [e for e in known if e.policy == policy]
        if any(e.running for e in same):
            return
        generation = same[-1].generation + 1 if same else 0
        summary = same[-1].summary if same else ""
        if pages_now(event):
            if await self.store.acknowledged_version(event.aggregate_id):
                return
            await self._begin(event, config, generation, event.time, summary)
        elif event.status == "acknowledged" and config.ack_timeout is not None:
            at = event.time + timedelta(seconds=config.ack_timeout)
            await self._begin(event, config, generation, at, summary)

    async def _stop_all(self, alert_id: str, reason: str) -> None:
        for escalation in await self.store.for_alert(alert_id):
            if escalation.running:
                await self._stop_locked(escalation.id, reason)

    async def apply(self, event: Event, seq: int) -> None:
        """Fold one PAGING event (a consumer of the stream); any order, any repeat."""
        if not isinstance(event, EscalationEvent):
            return
        # under the escalation's lock: a step firing meanwhile must not have its next
        # deadline re-armed from a state read before it folded its own events
        async with self._lock(event.aggregate_id):
            await self.store.fold(event)
            escalation = await self.store.get(event.aggregate_id)
            if escalation is not None:
                self._arm(escalation)

    # --- decisions ------------------------------------------------------------

    async def _acknowledged(self, event: AlertAcknowledged, restart: bool = True) -> None:
        latest: dict[str, Escalation] = {}
        for escalation in await self.store.for_alert(event.aggregate_id):
            latest[escalation.policy] = escalation  # ordered by generation
        for name, escalation in latest.items():
            if escalation.cause == event.id:
                continue  # this acknowledgement was handled already
            if escalation.running:
                await self._stop_locked(escalation.id, "acknowledged", event.by)
            config = self.directory.policies().get(name)
            if restart and config is not None and config.ack_timeout is not None:
                at = event.time + timedelta(seconds=config.ack_timeout)
                await self._begin(
                    event, config, escalation.generation + 1, at, escalation.summary, escalation
                )

    async def _begin(
        self,
        trigger: AlertEvent,
        policy: EscalationPolicyConfig,
        generation: int,
        base: datetime,
        summary: str,
        previous: Escalation | None = None,
    ) -> None:
        """Start (alert, policy, generation) unless it exists; its first step is due at
        ``base`` plus the first step's delay."""
        alert_id = trigger.aggregate_id
        escalation = escalation_id(alert_id, policy.name, generation)
        async with self._lock(escalation):
            known = await self._known(escalation)
            if known is not None and (known.scheduled != NOWHERE or not known.running):
                await self._advance(escalation)  # finish what a crash may have left
                return
            ids = (alert_id, policy.name, generation)
            now = self.clock()
            started = EscalationStarted(
                id=event_id(*ids, 0, 0, "started"),
                aggregate_id=escalation,
                alert_id=alert_id,
                policy=policy.name,
                generation=generation,
                fingerprint=trigger.fingerprint,
                rule=trigger.rule,
                severity=previous.severity if previous is not None else trigger.severity,
                labels=dict(trigger.labels),
                summary=summary,
                time=now,
                correlation_id=trigger.correlation_id,
                causation_id=trigger.id,
            )
            scheduled = EscalationStepScheduled(
                id=event_id(*ids, 0, 0, "scheduled"),
                aggregate_id=escalation,
                alert_id=alert_id,
                policy=policy.name,
                generation=generation,
                round=0,
                step=0,
                due_at=base + timedelta(seconds=policy.steps[0].delay),
                time=now,
                correlation_id=started.correlation_id,
                causation_id=started.id,
            )
            published: list[Event] = [started, scheduled]
            if scheduled.due_at <= now:
                # the first page goes out at once: published before anything is folded,
                # so no database write delays it (a crash in between is caught up from
                # the stream when the trigger comes again)
                published.append(
                    self._step_fired(
                        Escalation.starting(started, trigger.metric, scheduled), policy, (0, 0), now
                    )
                )
            for event in published:
                await self.bus().publish(subjects.escalation(escalation), event)
            await self.store.fold_all(published, metric=trigger.metric)
            await self._advance(escalation)

    async def _fire(self, escalation_id: str, position: tuple[int, int]) -> None:
        async with self._lock(escalation_id):
            await self._fire_locked(escalation_id, position)

    async def _fire_locked(self, escalation_id: str, position: tuple[int, int]) -> None:
        escalation = await self.store.get(escalation_id)
        if escalation is None or escalation.pending != position:
            self._forget_if_not_pending(escalation_id, escalation)
            return
        now = self.clock()
        assert escalation.due_at is not None
        if escalation.due_at > now:
            self._arm(escalation)
            return
        policy = self.directory.policies().get(escalation.policy)
        if policy is None or position[1] >= len(policy.steps):
            await self._stop(escalation, "policy_removed")
            return
        await self._publish(self._step_fired(escalation, policy, position, now))
        await self._advance(escalation_id)

    def _step_fired(
        self,
        escalation: Escalation,
        policy: EscalationPolicyConfig,
        position: tuple[int, int],
        now: datetime,
    ) -> EscalationStepFired:
        round, step = position
        targets, unresolved = resolve(policy.steps[step].notify, self.directory, now)
        ids = (escalation.alert_id, escalation.policy, escalation.generation)
        if not targets:
            log.warning(
                "escalation step reaches nobody",
                extra={"escalation": escalation.id, "unresolved": unresolved},
            )
        return EscalationStepFired(
            id=event_id(*ids, round, step, "fired"),
            aggregate_id=escalation.id,
            alert_id=escalation.alert_id,
            policy=escalation.policy,
            generation=escalation.generation,
            step=step,
            round=round,
            targets=targets,
            fingerprint=escalation.fingerprint,
            rule=escalation.rule,
            severity=escalation.severity,
            metric=escalation.metric,
            labels=escalation.labels,
            summary=escalation.summary,
            unresolved=unresolved,
            time=now,
            causation_id=event_id(*ids, round, step, "scheduled"),
        )

    async def _advance(self, escalation_id: str) -> None:
        """Arm the pending step, or decide what follows the last fired one (lock held)."""
        escalation = await self.store.get(escalation_id)
        if escalation is None or not escalation.running:
            self._timers.pop(escalation_id, None)
            return
        if escalation.pending is not None:
            self._arm(escalation)
            return
        if escalation.fired == NOWHERE or escalation.due_at is None:
            return  # started, first step not yet scheduled: its trigger will redo both
        policy = self.directory.policies().get(escalation.policy)
        if policy is None:
            await self._stop(escalation, "policy_removed")
            return
        following = _successor(policy, escalation.fired)
        if following is None:
            await self._stop(escalation, "exhausted")
            return
        position, delay = following
        ids = (escalation.alert_id, escalation.policy, escalation.generation)
        await self._publish(
            EscalationStepScheduled(
                id=event_id(*ids, *position, "scheduled"),
                aggregate_id=escalation.id,
                alert_id=escalation.alert_id,
                policy=escalation.policy,
                generation=escalation.generation,
                round=position[0],
                step=position[1],
                due_at=escalation.due_at + timedelta(seconds=delay),
                time=self.clock(),
                causation_id=event_id(*ids, *escalation.fired, "fired"),
            )
        )
        updated = await self.store.get(escalation_id)
        if updated is not None:
            self._arm(updated)

    async def _stop_locked(self, escalation_id: str, reason: str, by: str = "") -> None:
        async with self._lock(escalation_id):
            escalation = await self._known(escalation_id)
            if escalation is not None and escalation.running:
                await self._stop(escalation, reason, by)

    async def _stop(self, escalation: Escalation, reason: str, by: str = "") -> None:
        ids = (escalation.alert_id, escalation.policy, escalation.generation)
        await self._publish(
            EscalationStopped(
                id=event_id(*ids, 0, 0, "stopped"),
                aggregate_id=escalation.id,
                alert_id=escalation.alert_id,
                policy=escalation.policy,
                generation=escalation.generation,
                reason=reason,  # type: ignore[arg-type]
                by=by,
                time=self.clock(),
            )
        )
        self._timers.pop(escalation.id, None)

    # --- plumbing -------------------------------------------------------------

    async def _publish(self, event: EscalationEvent) -> None:
        await self.bus().publish(subjects.escalation(event.aggregate_id), event)
        await self.store.fold(event)

    async def _catch_up(self, escalation_id: str) -> None:
        for recorded in await self.bus().read_subject(subjects.escalation(escalation_id)):
            await self.store.fold(recorded.event)

    async def _known(self, escalation_id: str) -> Escalation | None:
        """The escalation as the table has it, or as the stream has it when the table
        lost it (a crash between publish and fold)."""
        found = await self.store.get(escalation_id)
        if found is None:
            await self._catch_up(escalation_id)
            found = await self.store.get(escalation_id)
        return found

    def _arm(self, escalation: Escalation) -> None:
        pending = escalation.pending
        if pending is None or escalation.due_at is None:
            self._timers.pop(escalation.id, None)
            return
        self._timers[escalation.id] = (escalation.due_at, pending)
        self._wake.set()

    def _forget_if_not_pending(self, escalation_id: str, escalation: Escalation | None) -> None:
        if escalation is None or escalation.pending is None:
            self._timers.pop(escalation_id, None)
        else:
            self._arm(escalation)

    def _lock(self, escalation_id: str) -> asyncio.Lock:
        return self._locks.setdefault(escalation_id, asyncio.Lock())


def _successor(
    policy: EscalationPolicyConfig, fired: tuple[int, int]
) -> tuple[tuple[int, int], float] | None:
    """The step after ``fired`` and its delay; None after the last step of the last round.

    A repeated round's first step waits the first step's delay, or, when that is zero (page
    at once when the alert fires), the last step's delay, so a repeat is never sent
    together with the step before it unless the policy has no delays at all.
    """
    round, step = fired
    steps = policy.steps
    if step + 1 < len(steps):
        return (round, step + 1), steps[step + 1].delay
    if round < policy.repeat:
        return (round + 1, 0), steps[0].delay or steps[-1].delay
    return None
