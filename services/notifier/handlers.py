"""Consumers that route each notifiable event to its channels, once per (event, channel,
recipient), through the channels' lanes (services/notifier/lanes.py).

The consumers are not ordered: each event is routed and handed to its lanes, which keep
the per-subject order, the pace and the grouping. A channel that keeps failing holds
back only its own lane. The trigger is acknowledged once every target was delivered,
failed for good, or recorded as queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import aiohttp
import orjson
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from services.notifier.channels import TRANSPORTS, Transport
from services.notifier.channels.http import RetryAfter
from services.notifier.domain import (
    Addressed,
    LedgerEntry,
    delivered,
    delivery_id,
    failed,
    notification_for,
    subject_of,
)
from services.notifier.lanes import Lane, Pending, Sent
from services.notifier.projections import DeliveryLedger, Outcome
from services.notifier.routing import ALONE, Grouping, Route, compile_tree, routes_for
from shared import subjects
from shared.bus import EventBus
from shared.channelconfig import MAX_CHANNEL_TIMEOUT_S, ChannelBase
from shared.consumer import ConsumerSpec, Delivery, Handler, release_held
from shared.errors import PermanentDeliveryError, TransientDeliveryError
from shared.events import (
    AlertEvent,
    EscalationEvent,
    EscalationStepFired,
    Event,
    MessageDeadLettered,
    NotificationQueued,
    decode_event,
    derived_id,
)
from shared.faults import FaultBoard, channel_fault
from shared.outbound import OutboundGuard
from shared.routingconfig import RouteConfig
from shared.selfmetrics import REGISTRY
from shared.settings import Settings
from shared.streams import ALERTS, INCIDENTS, PAGING
from shared.suppression import muted, notified_as

log = logging.getLogger(__name__)

DELIVERIES = REGISTRY.counter(
    "vigil_notifier_deliveries_total",
    "Notifications by channel and outcome: delivered, retrying (a transient failure), "
    "failed (for good) or gave_up (its retry window ran out).",
    labels=("channel", "outcome"),
)

SETTLED_MEMORY = 100_000  # delivery ids this process settled, newest kept
# receivers whose every event acts on its own (PagerDuty triggers, acknowledges and
# resolves one incident per alert; DataDog aggregates events itself): never merged
UNMERGEABLE = frozenset({"pagerduty", "datadog"})
# a stop gives messages on the wire this long to finish and be recorded
LANE_STOP_GRACE_S = 2.0
SUSPECT_ALL = 2**63  # a stream position above any: every delivery is checked in the ledger
RECORD_RETRY_FIRST_S = 0.2
RECORD_RETRY_MAX_S = 5.0


def consumer_specs(channels: Sequence[ChannelBase]) -> tuple[ConsumerSpec, ...]:
    """The durable consumers; ack_wait covers the slowest channel's one attempt.

    Channels made through the API come and go while the consumers run, so the slowest a
    channel may be counts too.
    """
    slowest = max((c.timeout_s for c in channels), default=MAX_CHANNEL_TIMEOUT_S)
    ack_wait = max(30.0, max(slowest, MAX_CHANNEL_TIMEOUT_S) + 15.0)
    return tuple(
        ConsumerSpec(
            durable=durable,
            stream=stream,
            filter_subject=f"{prefix}.>",
            ordered=False,
            ack_wait_s=ack_wait,
            max_ack_pending=1024,
            workers=32,
        )
        for durable, stream, prefix in (
            ("notifier-alerts", ALERTS, subjects.ALERT_EVENTS),
            ("notifier-incidents", INCIDENTS, subjects.INCIDENT_EVENTS),
            ("notifier-pages", PAGING, subjects.PAGING_EVENTS),
        )
    )


class EscalationHook(Protocol):
    async def on_alert_event(self, event: AlertEvent, policy: str | None) -> None: ...

    async def apply(self, event: Event, seq: int) -> None: ...


@dataclass(frozen=True)
class Target:
    channel: ChannelBase
    to: Addressed
    group: str
    grouping: Grouping


@dataclass(frozen=True)
class Origin:
    """Where the trigger is on the log, so a dead letter can name it and be re-driven."""

    stream: str
    seq: int
    consumer: str
    subject: str


@dataclass
class Queued(Pending):
    channel: str = ""
    trigger: Event | None = None
    origin: Origin | None = None
    to: Addressed = field(default_factory=Addressed)


class NotificationDispatcher:
    """Delivers events to channels and keeps the ledger and the NOTIFICATIONS stream in step."""

    def __init__(
        self,
        channels: Sequence[ChannelBase],
        ledger: DeliveryLedger,
        bus: Callable[[], EventBus],
        transports: dict[str, Transport] | None = None,
        faults: FaultBoard | None = None,
        guard: OutboundGuard | None = None,
        routing: RouteConfig | None = None,
    ):
        self.faults = faults if faults is not None else FaultBoard()
        self.ledger = ledger
        self._bus = bus
        self.transports = dict(TRANSPORTS if transports is None else transports)
        # every delivery connects through the outbound policy, by default this process's
        self.guard = guard if guard is not None else OutboundGuard.from_settings(Settings())
        self._session: aiohttp.ClientSession | None = None
        self._settled: OrderedDict[str, None] = OrderedDict()
        self._threads: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        # per stream: sequences up to here may have been tried by a process before us
        self.tried_through: dict[str, int] = {}
        self.tree: Route = compile_tree(routing)
        self.escalation: EscalationHook | None = None
        self.channels: dict[str, ChannelBase] = {}
        self.lanes: dict[str, Lane] = {}
        self._running = False
        self.use_channels(channels)

    # --- configuration -------------------------------------------------------------

    def use_channels(self, channels: Iterable[ChannelBase]) -> None:
        """Deliver to ``channels`` (secrets in clear) from the next event on."""
        channels = list(channels)
        for channel in channels:
            if channel.type not in self.transports:
                raise ValueError(f"channel {channel.name!r}: no transport for {channel.type!r}")
        self.channels = {channel.name: channel for channel in channels}
        for channel in channels:
            self._lane(channel.name)

    def use_routing(self, routing: RouteConfig | None) -> None:
        self.tree = compile_tree(routing)

    def _lane(self, name: str) -> Lane:
        lane = self.lanes.get(name)
        if lane is None:
            lane = Lane(name, self._sender(name), self._give_up, 6 * 3600.0)
            self.lanes[name] = lane
            if self._running:
                lane.start()
        channel = self.channels.get(name)
        if channel is not None:
            merges = channel.type not in UNMERGEABLE
            lane.configure(channel.rate, channel.burst, channel.retry_for_s, merges)
        return lane

    # --- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        if self._session is None:
            self._session = self.guard.session()

    async def start_lanes(self) -> None:
        """Send what an earlier process left queued, then whatever comes; called once the
        channels made through the API are known too."""
        await self.open()
        self._running = True
        await self._restore_queued()
        for lane in self.lanes.values():
            lane.start()

    async def stop_sending(self) -> None:
        """Start nothing new; what is on the wire has a moment to go out and be recorded.

        Called first in a stop: a message sent once the broker is gone cannot be recorded,
        so the next process would send it again.
        """
        self._running = False
        await asyncio.gather(*(lane.stop(LANE_STOP_GRACE_S) for lane in self.lanes.values()))

    async def close(self) -> None:
        await self.stop_sending()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the notifier's HTTP session is not open")
        return self._session

    async def _restore_queued(self) -> None:
        """What an earlier process left waiting goes out again, in its order."""
        restored = 0
        for row in await self.ledger.queued():
            trigger = decode_event(row["trigger"])
            origin = Origin(**orjson.loads(row["origin"]))
            channel = self.channels.get(row["channel"])
            to = Addressed(row["subject_id"], row["recipient"], row["user"])
            grouping = ALONE if channel is None else self._grouping_of(trigger, channel)
            item = self._pending(trigger, row["channel"], to, row["group_key"], grouping, origin)
            item.attempts = int(row["attempts"])
            item.error = row["last_error"]
            self._lane(row["channel"]).restore(item)
            restored += 1
        if restored:
            log.info("restored queued notifications", extra={"count": restored})

    def _grouping_of(self, trigger: Event, channel: ChannelBase) -> Grouping:
        for match in routes_for(self.tree, trigger):
            if match.channels is None or channel.name in match.channels:
                return match.grouping
        return ALONE

    async def release_held(self, js: JetStreamContext, specs: Iterable[ConsumerSpec]) -> None:
        """Deliveries a dead notifier held go out now, not after the ack wait.

        Its messages stay unacknowledged for ``ack_wait_s`` (30 s or more), so pages in
        flight when it died would come half a minute late. The durable is created again
        at its acknowledged floor; everything it had delivered is checked against the
        ledger before it is sent, so nothing the dead process delivered goes out twice.
        One notifier per deployment: a second live one would have its in-flight
        messages handed over too.
        """
        specs = list(specs)
        await self.suspect_all_tried(js, specs)
        for spec in specs:
            try:
                info = await js.consumer_info(spec.stream.name, spec.durable)
            except NotFoundError:
                continue
            if info.num_ack_pending:
                await release_held(js, spec)

    def suspect_everything(self) -> None:
        """The broker is gone: until it is back, every delivery is checked in the ledger."""
        for stream in list(self.tried_through):
            self.tried_through[stream] = SUSPECT_ALL

    async def suspect_all_tried(self, js: JetStreamContext, specs: Iterable[ConsumerSpec]) -> None:
        """Whatever the streams hold now may have been tried by this or an earlier process.

        A restarted nats-server may have lost what its durables had delivered (their state
        is written asynchronously) and hand those messages over again as first deliveries;
        only the ledger knows they went out. Messages published after this are new.
        """
        for spec in specs:
            self.tried_through.setdefault(spec.stream.name, SUSPECT_ALL)
            try:
                info = await js.stream_info(spec.stream.name)
            except Exception:
                log.warning("stream unknown; its deliveries stay checked", exc_info=True)
                continue
            self.tried_through[spec.stream.name] = info.state.last_seq

    # --- routing ---------------------------------------------------------------------

    def targets_for(self, event: Event) -> tuple[list[Target], list[str]]:
        """Where ``event`` goes, and the escalation policies its routes chose.

        An alert event stamped with reasons not to page goes nowhere, though its
        policies are still named: the escalation engine stops what runs for the alert.
        """
        if isinstance(event, EscalationStepFired):
            return self._page_targets(event), []
        targets: dict[str, Target] = {}
        policies: list[str] = []
        subject = subject_of(event)
        kind = notified_as(event)  # None: suppressed, it goes to no channel
        for match in routes_for(self.tree, event):
            if match.policy and match.policy not in policies:
                policies.append(match.policy)
            if kind is None:
                continue
            names = self.channels.keys() if match.channels is None else match.channels
            for name in names:
                channel = self.channels.get(name)
                if channel is None or kind not in channel.events or name in targets:
                    continue
                targets[name] = Target(channel, Addressed(subject), match.group, match.grouping)
        return list(targets.values()), policies

    def _page_targets(self, event: EscalationStepFired) -> list[Target]:
        found: list[Target] = []
        for target in event.targets:
            channel = self.channels.get(target.channel)
            if channel is None:
                log.error(
                    "escalation step names a channel that does not exist",
                    extra={"channel": target.channel, "policy": event.policy},
                )
                continue
            to = Addressed(event.alert_id, target.recipient, target.user)
            group = f"page/{event.aggregate_id}/{event.round}/{event.step}/{target.recipient}"
            found.append(Target(channel, to, group, ALONE))
        if not found:
            self.faults.report(
                f"paging:{event.policy}",
                f"escalation step {event.step + 1} of {event.policy} reached nobody",
            )
            log.error(
                "escalation step reached nobody",
                extra={"policy": event.policy, "alert_id": event.alert_id, "step": event.step},
            )
        else:
            self.faults.clear(f"paging:{event.policy}")
        return found

    # --- the consumers ---------------------------------------------------------------

    def handler(self, spec: ConsumerSpec) -> Handler:
        async def deliver_to_channels(event: Event, delivery: Delivery) -> None:
            """Route one notifiable event and hand it to its channels' lanes."""
            await self.notify(event, delivery)

        return deliver_to_channels

    async def notify(self, event: Event, delivery: Delivery) -> None:
        if delivery.redrive:
            reopened = await self.ledger.reopen(event.id)
            log.info("re-driven", extra={"event_id": event.id, "reopened": reopened})
        targets, policies = self.targets_for(event)
        if targets:
            origin = Origin(
                delivery.stream, delivery.stream_seq, delivery.consumer, delivery.subject
            )
            ids = [delivery_id(event.id, t.channel.name, t.to.recipient) for t in targets]
            entries = await self._ledger_entries(ids, delivery)
            results = await asyncio.gather(
                *(
                    self._deliver(event, target, entries.get(one_id), origin)
                    for target, one_id in zip(targets, ids, strict=True)
                ),
                return_exceptions=True,
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            for error in errors:
                if not isinstance(error, Exception):
                    raise error
            if errors:
                raise errors[0]
        if isinstance(event, AlertEvent) and muted(event):
            for lane in self.lanes.values():
                lane.quiet(subject_of(event))
        if self.escalation is None:
            return
        if isinstance(event, AlertEvent):
            await self.escalation.on_alert_event(event, policies[0] if policies else None)
        elif isinstance(event, EscalationEvent):
            # the engine folds what it published itself; folding it here too means a step
            # deadline published just before a crash is armed again when the restarted
            # consumer hands it over, not only when the alert's next event comes
            await self.escalation.apply(event, delivery.stream_seq)

    async def _ledger_entries(
        self, delivery_ids: list[str], delivery: Delivery
    ) -> dict[str, LedgerEntry]:
        """The ledger rows that decide what is left to do.

        A message on its first delivery to our durable consumer has never been tried,
        so the ledger cannot hold it unless this process settled it moments ago: the
        SQL read (milliseconds on the paging path) is needed only for redeliveries.
        A durable created again at start (``release_held``) hands messages a dead
        process had tried over as first deliveries: those, up to ``tried_through``, are
        looked up too. Resetting the durable otherwise breaks that premise; rebuild the
        ledger first.
        """
        fresh = delivery.stream_seq > self.tried_through.get(delivery.stream, 0)
        if (
            delivery.deliveries == 1
            and fresh
            and not delivery.redrive
            and not any(i in self._settled for i in delivery_ids)
        ):
            return {}
        return await self.ledger.entries(delivery_ids)

    def _pending(
        self,
        trigger: Event,
        channel: str,
        to: Addressed,
        group: str,
        grouping: Grouping,
        origin: Origin,
    ) -> Queued:
        notification = notification_for(trigger, channel, to.recipient)
        return Queued(
            delivery_id=notification.delivery_id,
            subject=to.subject_id or notification.delivery_id,
            group=group,
            group_wait_s=grouping.group_wait_s,
            group_interval_s=grouping.group_interval_s,
            repeat_interval_s=grouping.repeat_interval_s,
            notification=notification,
            channel=channel,
            trigger=trigger,
            origin=origin,
            to=to,
        )

    async def _deliver(
        self, event: Event, target: Target, entry: LedgerEntry | None, origin: Origin
    ) -> None:
        name = target.channel.name
        item = self._pending(event, name, target.to, target.group, target.grouping, origin)
        if entry is not None and entry.settled:
            if entry.outbox is not None:
                await self._publish(item.delivery_id, decode_event(entry.outbox))
            return
        lane = self._lane(name)
        if lane.holds(item.delivery_id):
            return  # waiting already (restored at start, or a redelivery of its trigger)
        if entry is not None:  # queued by a process that died before its trigger was acked
            lane.restore(item)
            return
        result = await lane.submit(item)
        if result == "queued" and lane.holds(item.delivery_id):
            await self._record_queued(item)

    async def _record_queued(self, item: Queued) -> None:
        assert item.trigger is not None and item.origin is not None
        queued = NotificationQueued(
            id=derived_id(item.delivery_id, "queued"),
            aggregate_id=item.delivery_id,
            event_id=item.trigger.id,
            event_type=item.trigger.type,
            channel=item.channel,
            attempts=item.attempts,
            subject_id=item.to.subject_id,
            recipient=item.to.recipient,
            user=item.to.user,
            trigger=item.trigger.encode().decode(),
            origin_stream=item.origin.stream,
            origin_seq=item.origin.seq,
            origin_consumer=item.origin.consumer,
            origin_subject=item.origin.subject,
            group=item.group,
            error=item.error[:2000],
            correlation_id=item.trigger.correlation_id,
            causation_id=item.trigger.id,
        )
        await self.ledger.record_queued(queued)
        await self._bus().publish(subjects.notification(item.delivery_id), queued)

    # --- sending (called by the lanes) ---------------------------------------------

    def _sender(self, name: str) -> Callable[[list[Pending]], Any]:
        async def send(batch: list[Pending]) -> Sent:
            return await self._send(name, [item for item in batch if isinstance(item, Queued)])

        return send

    async def _send(self, name: str, batch: list[Queued]) -> Sent:
        head = batch[0]
        channel = self.channels.get(name)
        context = {
            "channel": name,
            "delivery_id": head.delivery_id,
            "event_type": head.notification.event_type,
            "merged": len(batch) - 1,
        }
        if channel is None:
            await self._fail_for_good(batch, f"channel {name!r} was removed")
            return Sent(ok=False, permanent=True, error="channel removed")
        notification = replace(
            head.notification,
            thread=await self._thread(name, head.to.subject_id, head.to.recipient),
            digest=tuple(item.notification.payload for item in batch[1:]),
        )
        transport = self.transports[channel.type]
        try:
            receipt = await transport(self.session, channel, notification)
        except PermanentDeliveryError as exc:
            self.faults.report(channel_fault(name), exc.message)
            log.warning("delivery failed for good", extra=context | {"error": exc.message})
            await self._fail_for_good(batch, exc.message)
            return Sent(ok=False, permanent=True, error=exc.message)
        except TransientDeliveryError as exc:
            self.faults.report(channel_fault(name), exc.message)
            retry_after = exc.retry_after_s if isinstance(exc, RetryAfter) else None
            log.info("delivery failed; will retry", extra=context | {"error": exc.message})
            DELIVERIES.inc(len(batch), channel=name, outcome="retrying")
            return Sent(ok=False, error=exc.message, retry_after_s=retry_after)
        self.faults.clear(channel_fault(name))
        if receipt.thread and head.to.subject_id:
            self._remember_thread((name, head.to.subject_id, head.to.recipient), receipt.thread)
        for index, item in enumerate(batch):
            assert item.trigger is not None
            await self._settle_surely(
                delivered(
                    item.trigger,
                    item.notification,
                    name,
                    item.attempts,
                    receipt.status_code,
                    receipt.latency_ms,
                    item.to,
                    digest="" if index == 0 else head.delivery_id,
                    thread=receipt.thread if index == 0 else None,
                )
            )
        log.info("delivered", extra=context | {"latency_ms": round(receipt.latency_ms, 1)})
        DELIVERIES.inc(len(batch), channel=name, outcome="delivered")
        return Sent(ok=True)

    async def _fail_for_good(self, batch: list[Queued], error: str, gave_up: bool = False) -> None:
        head = batch[0]
        for index, item in enumerate(batch):
            assert item.trigger is not None and item.origin is not None
            outcome = failed(
                item.trigger,
                item.notification,
                item.channel,
                item.attempts,
                error,
                permanent=not gave_up,
                to=item.to,
                digest="" if index == 0 else head.delivery_id,
                gave_up=gave_up,
            )
            await self._settle(outcome)
            await self._dead_letter(item, outcome.id, error)
            DELIVERIES.inc(channel=item.channel, outcome="gave_up" if gave_up else "failed")

    async def _give_up(self, batch: list[Pending], error: str) -> None:
        items = [item for item in batch if isinstance(item, Queued)]
        log.error(
            "gave up on notifications after their retry window; dead-lettered",
            extra={"count": len(items), "error": error[:200]},
        )
        await self._fail_for_good(items, error, gave_up=True)

    async def _dead_letter(self, item: Queued, failure_id: str, error: str) -> None:
        assert item.trigger is not None and item.origin is not None
        record = MessageDeadLettered(
            id=derived_id("dead-letter", failure_id),
            aggregate_id=item.origin.consumer,
            consumer=item.origin.consumer,
            stream=item.origin.stream,
            stream_seq=item.origin.seq,
            subject=item.origin.subject,
            deliveries=item.attempts,
            error=f"{item.channel}: {error}"[:2000],
            payload=item.trigger.encode().decode(),
        )
        await self._bus().publish(subjects.dead_letter(item.origin.consumer), record)

    # --- threads ---------------------------------------------------------------------

    async def _thread(self, channel: str, subject: str, recipient: str) -> str | None:
        """A person paged directly has a conversation of their own about the subject."""
        if not subject:
            return None
        key = (channel, subject, recipient)
        known = self._threads.get(key)
        if known is not None:
            return known
        found = await self.ledger.thread(channel, subject, recipient)
        if found:
            self._remember_thread(key, found)
        return found

    def _remember_thread(self, key: tuple[str, str, str], thread: str) -> None:
        self._threads.setdefault(key, thread)
        if len(self._threads) > SETTLED_MEMORY:
            self._threads.popitem(last=False)

    # --- outcomes --------------------------------------------------------------------

    def _remember_settled(self, delivery_id: str) -> None:
        self._settled[delivery_id] = None
        if len(self._settled) > SETTLED_MEMORY:
            self._settled.popitem(last=False)

    async def _settle_surely(self, outcome: Outcome) -> None:
        """Record what went out, however long the database or the broker is away: were the
        lane to try the message again instead, the receiver would get it twice. A stop
        meanwhile leaves it unrecorded, and the next process sends it again (at least once).
        """
        delay = RECORD_RETRY_FIRST_S
        while True:
            try:
                await self._settle(outcome)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning(
                    "could not record a delivery; trying again",
                    exc_info=True,
                    extra={"delivery_id": outcome.aggregate_id, "channel": outcome.channel},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECORD_RETRY_MAX_S)

    async def _settle(self, outcome: Outcome) -> None:
        await self.ledger.record_outcome(outcome)
        self._remember_settled(outcome.aggregate_id)
        await self._publish(outcome.aggregate_id, outcome)

    async def _publish(self, delivery_id: str, outcome: Event) -> None:
        seq = await self._bus().publish(subjects.notification(delivery_id), outcome)
        self.ledger.mark_published_soon(delivery_id, seq)
