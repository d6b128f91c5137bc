"""Consumers that fan each notifiable event out to its channels, once per (event, channel).

The consumers are not ordered: a channel that keeps failing naks its own message
with backoff while later events flow. Within one event all channels are tried
concurrently and each settles on its own, so a slow or dead channel does not
hold back a healthy one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

import aiohttp
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from services.notifier.channels import TRANSPORTS, Transport
from services.notifier.channels.http import RetryAfter
from services.notifier.domain import (
    INLINE_WAIT_LIMIT_S,
    Defer,
    LedgerEntry,
    Skip,
    delivered,
    failed,
    is_last_attempt,
    next_attempt_at,
    notification_for,
    plan,
    subscribed_channels,
)
from services.notifier.projections import DeliveryLedger, Outcome
from shared import subjects
from shared.bus import EventBus
from shared.channelconfig import MAX_CHANNEL_TIMEOUT_S, ChannelBase
from shared.consumer import ConsumerSpec, Delivery, Handler, release_held
from shared.errors import PermanentDeliveryError, TransientDeliveryError
from shared.events import Event, decode_event, utcnow
from shared.faults import FaultBoard, channel_fault
from shared.outbound import OutboundGuard
from shared.settings import Settings
from shared.streams import ALERTS, INCIDENTS

log = logging.getLogger(__name__)

SETTLED_MEMORY = 100_000  # delivery ids this process settled, newest kept


def consumer_specs(channels: Sequence[ChannelBase]) -> tuple[ConsumerSpec, ConsumerSpec]:
    """The two durable consumers; ack_wait covers the slowest channel plus a Retry-After wait.

    Channels made through the API come and go while the consumers run, so the slowest a
    channel may be counts too.
    """
    slowest = max((c.timeout_s for c in channels), default=MAX_CHANNEL_TIMEOUT_S)
    slowest = max(slowest, MAX_CHANNEL_TIMEOUT_S)
    ack_wait = max(30.0, slowest + INLINE_WAIT_LIMIT_S + 15.0)
    return (
        ConsumerSpec(
            durable="notifier-alerts",
            stream=ALERTS,
            filter_subject=f"{subjects.ALERT_EVENTS}.>",
            ordered=False,
            ack_wait_s=ack_wait,
        ),
        ConsumerSpec(
            durable="notifier-incidents",
            stream=INCIDENTS,
            filter_subject=f"{subjects.INCIDENT_EVENTS}.>",
            ordered=False,
            ack_wait_s=ack_wait,
        ),
    )


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
    ):
        self.channels = list(channels)
        self.faults = faults if faults is not None else FaultBoard()
        self.ledger = ledger
        self._bus = bus
        self.transports = dict(TRANSPORTS if transports is None else transports)
        # every delivery connects through the outbound policy, by default this process's
        self.guard = guard if guard is not None else OutboundGuard.from_settings(Settings())
        self._session: aiohttp.ClientSession | None = None
        self._settled: OrderedDict[str, None] = OrderedDict()
        # per stream: sequences up to here may have been tried by a process before us
        self.tried_through: dict[str, int] = {}
        self.use_channels(channels)

    def use_channels(self, channels: Sequence[ChannelBase]) -> None:
        """Deliver to ``channels`` (secrets in clear) from the next event on."""
        for channel in channels:
            if channel.type not in self.transports:
                raise ValueError(f"channel {channel.name!r}: no transport for {channel.type!r}")
        self.channels = list(channels)

    async def open(self) -> None:
        if self._session is None:
            self._session = self.guard.session()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the notifier's HTTP session is not open")
        return self._session

    async def release_held(self, js: JetStreamContext, specs: Iterable[ConsumerSpec]) -> None:
        """Deliveries a dead notifier held go out now, not after the ack wait.

        Its messages stay unacknowledged for ``ack_wait_s`` (30 s or more), so pages in
        flight when it died would come half a minute late. The durable is created again
        at its acknowledged floor; everything it had delivered is checked against the
        ledger before it is sent, so nothing the dead process delivered goes out twice.
        One notifier per deployment: a second live one would have its in-flight
        messages handed over too.
        """
        for spec in specs:
            try:
                info = await js.consumer_info(spec.stream.name, spec.durable)
            except NotFoundError:
                continue
            if not info.num_ack_pending:
                continue
            delivered = info.delivered.stream_seq if info.delivered else 0
            self.tried_through[spec.stream.name] = delivered or 0
            await release_held(js, spec)

    def handler(self, spec: ConsumerSpec) -> Handler:
        async def deliver_to_channels(event: Event, delivery: Delivery) -> None:
            """Deliver one notifiable event to every subscribed channel."""
            await self.notify(event, delivery, spec.max_attempts)

        return deliver_to_channels

    async def notify(self, event: Event, delivery: Delivery, max_attempts: int) -> None:
        """Raises TransientDeliveryError when a channel needs another attempt."""
        targets = subscribed_channels(event, self.channels)
        if not targets:
            return
        ids = {c.name: notification_for(event, c.name).delivery_id for c in targets}
        entries = await self._ledger_entries(list(ids.values()), delivery)
        results = await asyncio.gather(
            *(
                self._notify_channel(event, channel, entries.get(ids[channel.name]), delivery)
                for channel in targets
            ),
            return_exceptions=True,
        )
        pending: dict[str, str] = {}
        unexpected: list[Exception] = []
        for channel, result in zip(targets, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                unexpected.append(result)
            elif result is not None:
                pending[channel.name] = result
        if unexpected:
            raise unexpected[0]
        if not pending:
            return
        if is_last_attempt(delivery.deliveries, max_attempts):
            for channel in targets:
                if channel.name in pending:
                    await self._settle(
                        failed(
                            event,
                            notification_for(event, channel.name),
                            channel.name,
                            delivery.deliveries,
                            pending[channel.name],
                            permanent=False,
                        )
                    )
        raise TransientDeliveryError(
            "; ".join(f"{name}: {error}" for name, error in sorted(pending.items()))
        )

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
        if delivery.deliveries == 1 and fresh and not any(i in self._settled for i in delivery_ids):
            return {}
        return await self.ledger.entries(delivery_ids)

    def _remember_settled(self, delivery_id: str) -> None:
        self._settled[delivery_id] = None
        if len(self._settled) > SETTLED_MEMORY:
            self._settled.popitem(last=False)

    async def _notify_channel(
        self, event: Event, channel: ChannelBase, entry: LedgerEntry | None, delivery: Delivery
    ) -> str | None:
        """None once the pair is settled; otherwise why another attempt is needed."""
        notification = notification_for(event, channel.name)
        context = {
            "event_id": event.id,
            "event_type": event.type,
            "channel": channel.name,
            "delivery_id": notification.delivery_id,
            "deliveries": delivery.deliveries,
            "correlation_id": event.correlation_id,
        }
        decision = plan(entry, utcnow())
        if isinstance(decision, Skip):
            if entry is not None and entry.outbox is not None:
                await self._publish(notification.delivery_id, decode_event(entry.outbox))
            return None
        if isinstance(decision, Defer):
            log.info("delivery deferred by Retry-After", extra=context)
            return f"receiver asked to retry in {decision.retry_in_s:.1f}s"
        if decision.wait_s > 0:
            await asyncio.sleep(decision.wait_s)
        transport = self.transports[channel.type]
        try:
            receipt = await transport(self.session, channel, notification)
        except PermanentDeliveryError as exc:
            self.faults.report(channel_fault(channel.name), exc.message)
            log.warning("delivery failed for good", extra=context | {"error": exc.message})
            await self._settle(
                failed(event, notification, channel.name, delivery.deliveries, exc.message, True)
            )
            return None
        except TransientDeliveryError as exc:
            self.faults.report(channel_fault(channel.name), exc.message)
            retry_after = exc.retry_after_s if isinstance(exc, RetryAfter) else None
            now = utcnow()
            await self.ledger.record_retrying(
                notification.delivery_id,
                event,
                channel.name,
                delivery.deliveries,
                exc.message,
                next_attempt_at(now, retry_after),
                now,
            )
            log.info("delivery failed; will retry", extra=context | {"error": exc.message})
            return exc.message
        await self._settle(
            delivered(
                event,
                notification,
                channel.name,
                delivery.deliveries,
                receipt.status_code,
                receipt.latency_ms,
            )
        )
        self.faults.clear(channel_fault(channel.name))
        log.info("delivered", extra=context | {"latency_ms": round(receipt.latency_ms, 1)})
        return None

    async def _settle(self, outcome: Outcome) -> None:
        await self.ledger.record_outcome(outcome)
        self._remember_settled(outcome.aggregate_id)
        await self._publish(outcome.aggregate_id, outcome)

    async def _publish(self, delivery_id: str, outcome: Event) -> None:
        seq = await self._bus().publish(subjects.notification(delivery_id), outcome)
        self.ledger.mark_published_soon(delivery_id, seq)
