"""One lane per channel: the order, pace and grouping of what it sends.

A notification that nothing defers (no group interval to honour, a token to spend, no
receiver being retried) takes the fast path: it is sent as soon as a slot on the wire is
free, while the handler of its trigger waits, and the trigger is acknowledged only after
the outcome is recorded. A deferred one waits in the lane (recorded as ``queued`` first,
so a crash loses nothing) and goes out as soon as it may:

- per subject (an alert, an incident) in the order its events arrived; a later event
  never overtakes an earlier one that is still waiting, on the wire or being retried
  (messages about different subjects go out side by side, up to ``MAX_IN_FLIGHT``);
- per group, at most one message per ``group_interval``; what arrived in between goes
  out together, as one message with a digest;
- at most ``rate`` messages a second (a token bucket of ``burst``); while the bucket is
  empty everything waiting is merged into the next message, so a storm becomes a few
  digests instead of a backlog, and nothing is dropped;
- a group whose alerts still fire (not acknowledged, not resolved) is sent again every
  ``repeat_interval``; this memory is the process's own, so a restart starts it afresh
  from the next event of the group;
- a receiver that fails is retried with capped exponential backoff and jitter (its
  ``Retry-After`` honoured) for ``retry_for``; the lane holds back meanwhile, and the
  next attempt carries everything that piled up. After that the notification is
  dead-lettered, loudly, and can be re-driven.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from services.notifier.domain import Notification
from shared.events import derived_id

log = logging.getLogger(__name__)

MAX_DIGEST = 500  # notifications one message carries at most
MAX_IN_FLIGHT = 8  # messages a lane has on the wire at once, each about another subject
BACKOFF_FIRST_S = 1.0
BACKOFF_CAP_S = 300.0
GROUP_MEMORY_S = 3600.0  # a group with nothing waiting is forgotten this long after it sent
MUTED_MEMORY = 100_000  # subjects kept from being repeated, newest kept

Result = Literal["delivered", "failed", "queued"]


def repeat_id(delivery_id: str, repeat: int) -> str:
    """The n-th repeat of a delivery: a delivery of its own in the ledger."""
    return derived_id(delivery_id, "repeat", repeat)


@dataclass
class Pending:
    """One notification waiting for its lane (or being sent by it)."""

    delivery_id: str
    subject: str
    group: str
    group_wait_s: float
    group_interval_s: float
    notification: Notification
    repeat_interval_s: float = 0.0
    first_tried: float | None = None  # time.time() of the first attempt
    attempts: int = 0
    ready_at: float = 0.0  # loop time
    error: str = ""
    accepted: asyncio.Future[Result] | None = None  # the handler waiting on the fast path
    on_the_wire: bool = False
    repeat: bool = False  # made by the lane for ``repeat_interval``, not by an event


@dataclass
class Sent:
    ok: bool
    permanent: bool = False
    error: str = ""
    retry_after_s: float | None = None


# Sends one message (the first notification, the rest as its digest) and records the
# outcome of every notification in it; answers what happened.
Sender = Callable[[list[Pending]], Awaitable[Sent]]
GiveUp = Callable[[list[Pending], str], Awaitable[None]]


@dataclass
class TokenBucket:
    rate: float
    burst: int
    tokens: float = 0.0
    stamp: float = 0.0

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()

    def _refill(self, now: float) -> None:
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_s(self, now: float) -> float:
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1.0


@dataclass
class GroupState:
    last_sent: float | None = None
    repeat_s: float = 0.0
    firing: dict[str, Pending] = field(default_factory=dict)  # subject -> its last message
    repeats: int = 0

    def repeat_due(self) -> float | None:
        if not self.firing or self.repeat_s <= 0 or self.last_sent is None:
            return None
        return self.last_sent + self.repeat_s


@dataclass
class Lane:
    channel: str
    send: Sender
    give_up: GiveUp
    retry_for_s: float
    bucket: TokenBucket | None = None
    waiting: list[Pending] = field(default_factory=list)
    groups: dict[str, GroupState] = field(default_factory=dict)
    muted: dict[str, None] = field(default_factory=dict)  # subjects not to repeat, in order
    held_until: float = 0.0  # the receiver failed: nothing is tried before this
    congested: bool = False  # the bucket ran dry: merge everything waiting
    merges: bool = True  # the receiver shows a digest; otherwise one event a message
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _ids: set[str] = field(default_factory=set)
    _flying: dict[str, int] = field(default_factory=dict)  # subject -> messages in flight
    _sends: set[asyncio.Task[None]] = field(default_factory=set)

    # --- what the dispatcher calls ---------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"lane {self.channel}")

    async def stop(self, grace_s: float = 0.0) -> None:
        """Send nothing more; messages on the wire get ``grace_s`` to finish and be recorded."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._sends and grace_s > 0:
            await asyncio.wait(set(self._sends), timeout=grace_s)
        for send in list(self._sends):
            send.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await send
        for item in self.waiting:
            if item.accepted is not None and not item.accepted.done():
                item.accepted.cancel()

    def holds(self, delivery_id: str) -> bool:
        return delivery_id in self._ids

    async def submit(self, item: Pending) -> Result:
        """Delivered or failed when it went out at once; queued when it has to wait (the
        caller then records it as queued before acknowledging its trigger)."""
        if item.delivery_id in self._ids:
            return "queued"
        self.muted.pop(item.subject, None)
        item.accepted = asyncio.get_running_loop().create_future()
        self._enqueue(item)
        self._release_fast_path()  # it waits for a group, the rate or a retry: queued
        return await asyncio.shield(item.accepted)

    def restore(self, item: Pending) -> None:
        """A notification recorded as queued by an earlier process."""
        if item.delivery_id not in self._ids:
            self._enqueue(item)

    def configure(
        self, rate: float | None, burst: int, retry_for_s: float, merges: bool = True
    ) -> None:
        self.retry_for_s = retry_for_s
        self.merges = merges
        if rate is None:
            self.bucket = None
        elif self.bucket is None or (self.bucket.rate, self.bucket.burst) != (rate, burst):
            self.bucket = TokenBucket(rate, burst)

    def quiet(self, subject: str) -> None:
        """The subject pages nobody now (silenced, inhibited, in maintenance, flapping):
        its last message is not repeated, until an event about it is sent again."""
        self.muted[subject] = None
        if len(self.muted) > MUTED_MEMORY:
            del self.muted[next(iter(self.muted))]
        for state in self.groups.values():
            state.firing.pop(subject, None)
        stale = [p for p in self.waiting if p.repeat and p.subject == subject]
        if stale:
            self._drop([p for p in stale if not p.on_the_wire], "delivered")

    @property
    def depth(self) -> int:
        return len(self.waiting)

    # --- the loop ----------------------------------------------------------------

    def _enqueue(self, item: Pending) -> None:
        now = time.monotonic()
        state = self.groups.setdefault(item.group, GroupState())
        if state.last_sent is None:
            ready = now + item.group_wait_s
        else:
            ready = max(now, state.last_sent + item.group_interval_s)
        same_group = [p.ready_at for p in self.waiting if p.group == item.group]
        item.ready_at = max(item.ready_at, min([ready, *same_group]))
        self.waiting.append(item)
        self._ids.add(item.delivery_id)
        self._wake.set()

    def _ready(self, now: float) -> tuple[list[Pending], float | None]:
        """What may go now, in arrival order, and when the next waiting one may."""
        blocked: set[str] = set()
        ready: list[Pending] = []
        soonest: float | None = None
        for item in self.waiting:
            if item.subject in blocked or item.subject in self._flying:
                blocked.add(item.subject)
                continue
            if item.ready_at <= now:
                ready.append(item)
            else:
                blocked.add(item.subject)  # its later events wait behind it
                soonest = item.ready_at if soonest is None else min(soonest, item.ready_at)
        return ready, soonest

    async def _sleep(self, seconds: float | None) -> None:
        self._wake.clear()
        if seconds is not None and seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                # the sender records outcomes; a failure to do so (the broker or the
                # database away) is retried after a pause, with nothing dropped
                log.exception("channel lane failed; retrying", extra={"channel": self.channel})
                await asyncio.sleep(1.0)

    async def _step(self) -> None:
        now = time.monotonic()
        if self.held_until > now:
            self._release_fast_path()
            await self._sleep(self.held_until - now)
            return
        ready, soonest = self._ready(now)
        if ready and len(self._sends) >= MAX_IN_FLIGHT:
            self._release_fast_path()
            await self._sleep(None)  # a send that ends wakes the lane
            return
        if not ready:
            if not self._sends:
                self.congested = False
            self._release_fast_path()
            self._forget_idle_groups(now)
            queued, repeat = self._repeat(now)
            if queued:
                return  # they are ready now
            if repeat is not None:
                soonest = repeat if soonest is None else min(soonest, repeat)
            await self._sleep(None if soonest is None else soonest - now)
            return
        if self.bucket is not None:
            wait = self.bucket.wait_s(now)
            if wait > 0:
                self.congested = True
                self._release_fast_path()
                await self._sleep(wait)
                return
            self.bucket.take(now)
        batch = self._batch(ready)
        for item in batch:
            item.on_the_wire = True
            self._flying[item.subject] = self._flying.get(item.subject, 0) + 1
            # the group's interval counts from now: what comes meanwhile waits for it
            self.groups.setdefault(item.group, GroupState()).last_sent = now
        send = asyncio.create_task(self._send(batch), name=f"send {self.channel}")
        self._sends.add(send)
        send.add_done_callback(self._sends.discard)

    def _batch(self, ready: list[Pending]) -> list[Pending]:
        """The next message: the head, and what may ride along as its digest. One event
        per subject (a later one is a change the receiver must see as such); nothing
        rides along on a channel that cannot show a digest (PagerDuty: one incident per
        alert)."""
        head = ready[0]
        if not self.merges:
            return [head]
        if self.congested or head.attempts:
            # rate limited or catching up after a failure: one message for everything
            candidates = ready
        else:
            candidates = [item for item in ready if item.group == head.group]
        batch: list[Pending] = []
        subjects: set[str] = set()
        for item in candidates:
            if item.subject not in subjects:
                subjects.add(item.subject)
                batch.append(item)
        return batch[:MAX_DIGEST]

    def _release_fast_path(self) -> None:
        """Handlers waiting on a notification that is deferred (its group's interval, the
        rate limit, a receiver being retried, or an earlier event of its subject that is)
        record it as queued and move on. One that only waits for a free slot on the wire
        keeps its handler: it goes out in moments, and its trigger is acknowledged once
        it did, as on the fast path."""
        now = time.monotonic()
        held = self.held_until > now or self.congested
        deferred: set[str] = set()
        for item in self.waiting:
            if item.on_the_wire:
                continue
            if held or item.ready_at > now or item.subject in deferred:
                deferred.add(item.subject)
            else:
                continue
            if item.accepted is not None and not item.accepted.done():
                item.accepted.set_result("queued")

    async def _send(self, batch: list[Pending]) -> None:
        """One message; several run at once, for different subjects."""
        try:
            await self._attempt(batch)
        except asyncio.CancelledError:
            raise
        except Exception:
            # the sender records outcomes; a failure to do so (the broker or the database
            # away) leaves the batch waiting, tried again after a pause, nothing dropped
            log.exception("channel lane failed; retrying", extra={"channel": self.channel})
            self.held_until = max(self.held_until, time.monotonic() + 1.0)
        finally:
            for item in batch:
                item.on_the_wire = False
                left = self._flying.get(item.subject, 1) - 1
                if left:
                    self._flying[item.subject] = left
                else:
                    self._flying.pop(item.subject, None)
            self._wake.set()

    async def _attempt(self, batch: list[Pending]) -> None:
        started = time.time()
        for item in batch:
            item.attempts += 1
            if item.first_tried is None:
                item.first_tried = started
        outcome = await self.send(batch)
        now = time.monotonic()
        if outcome.ok:
            self._remember_firing(batch)
        if outcome.ok or outcome.permanent:
            self._drop(batch, "delivered" if outcome.ok else "failed")
            return
        expired = [i for i in batch if time.time() - (i.first_tried or started) >= self.retry_for_s]
        if expired:
            await self.give_up(expired, outcome.error)
            self._drop(expired, "failed")
        attempts = max((i.attempts for i in batch), default=1)
        delay = outcome.retry_after_s
        if delay is None:
            delay = min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** (attempts - 1))
            delay *= random.uniform(0.8, 1.2)  # receivers coming back are not hit at once
        self.held_until = now + delay
        for item in batch:
            item.error = outcome.error
            item.ready_at = self.held_until
            if item.accepted is not None and not item.accepted.done():
                item.accepted.set_result("queued")

    def _remember_firing(self, batch: list[Pending]) -> None:
        for item in batch:
            if item.repeat_interval_s <= 0:
                continue
            state = self.groups.setdefault(item.group, GroupState())
            state.repeat_s = item.repeat_interval_s
            status = (item.notification.payload.get("alert") or {}).get("status")
            if status == "firing" and item.subject not in self.muted:
                state.firing[item.subject] = item
            elif status in ("acknowledged", "resolved"):
                state.firing.pop(item.subject, None)

    def _repeat(self, now: float) -> tuple[bool, float | None]:
        """Queue the repeat of every group that is due; whether any was, and when the next
        one is due."""
        queued = False
        soonest: float | None = None
        for state in self.groups.values():
            due = state.repeat_due()
            if due is None:
                continue
            if due > now:
                soonest = due if soonest is None else min(soonest, due)
                continue
            state.repeats += 1
            state.last_sent = now  # not again until this repeat went out and one more interval
            queued = True
            for item in list(state.firing.values()):
                again = repeat_id(item.delivery_id, state.repeats)
                self._enqueue(
                    replace(
                        item,
                        delivery_id=again,
                        notification=replace(item.notification, delivery_id=again),
                        attempts=0,
                        first_tried=None,
                        ready_at=0.0,
                        error="",
                        accepted=None,
                        repeat=True,
                    )
                )
        return queued, soonest

    def _drop(self, items: list[Pending], result: Result) -> None:
        gone = {id(item) for item in items}
        self.waiting = [item for item in self.waiting if id(item) not in gone]
        for item in items:
            self._ids.discard(item.delivery_id)
            if item.accepted is not None and not item.accepted.done():
                item.accepted.set_result(result)

    def _forget_idle_groups(self, now: float) -> None:
        if len(self.groups) < 10_000:
            return
        waiting = {item.group for item in self.waiting}
        self.groups = {
            key: state
            for key, state in self.groups.items()
            if key in waiting or state.firing or (state.last_sent or now) > now - GROUP_MEMORY_S
        }
