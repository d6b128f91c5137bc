"""Every sample on METRICS forwarded to a Prometheus-compatible store (remote-write 1.0).

A durable consumer of its own (``metrics-remote-write``), so the store gets every sample
whatever Vigil's own store is doing, and resumes where it stopped after a restart. Its
acknowledgement policy is explicit and its own (not ``shared.consumer``'s, which gives up
on a message after a few attempts): a message is acknowledged only once the store
answered 2xx for every sample it carried, or refused them for good (any 4xx but 429:
dropped, logged and counted, as Prometheus does). While the store fails or is away the
batch is retried in place, with a doubling backoff up to a cap, without end, and the held
messages are kept "in progress" so JetStream does not hand them out again meanwhile.

Delivery is at least once: a crash between the store's answer and the acknowledgement
sends those samples again, and remote-write receivers take an identical sample twice as
one. Memory is bounded by the batch: at most ``batch_samples`` plus one message's samples,
and at most ``MAX_MESSAGES_HELD`` messages, are held at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import nats.errors
from nats.aio.msg import Msg

from services.metrics.remote.auth import RemoteAuth
from services.metrics.remote.sender import Answer, RemoteWriteSender
from shared import subjects
from shared.bus import EventBus
from shared.consumer import ConsumerSpec, dead_letter
from shared.events import SampleBlock, SamplesIngested, UndecodableEvent, decode_event
from shared.promwire import LabelCache, WriteRequestBuilder
from shared.runtime import ServiceRuntime
from shared.selfmetrics import REGISTRY
from shared.settings import Settings
from shared.streams import METRICS

log = logging.getLogger(__name__)

MAX_MESSAGES_HELD = 1_024
FETCH_TIMEOUT_S = 1.0  # one pull request's wait when nothing is buffered
# the held messages' ack wait; "in progress" is sent several times within it while retrying
ACK_WAIT_S = 60.0
PROGRESS_EVERY_S = ACK_WAIT_S / 4
SUBSCRIBE_TIMEOUT_S = 30.0

FORWARD_CONSUMER = ConsumerSpec(
    durable="metrics-remote-write",
    stream=METRICS,
    filter_subject=f"{subjects.SAMPLES}.>",
    ordered=False,
    ack_wait_s=ACK_WAIT_S,
    batch=MAX_MESSAGES_HELD,  # max_ack_pending: messages held at once
)

FORWARDED_SAMPLES = REGISTRY.counter(
    "vigil_remote_write_samples_total",
    "Samples forwarded to the remote-write store, by outcome (sent; dropped: refused "
    "for good by the store, or undecodable).",
    labels=("outcome",),
)
REMOTE_WRITE_REQUESTS = REGISTRY.counter(
    "vigil_remote_write_requests_total",
    "Remote-write requests by outcome (stored; retried: 5xx, 429 or unreachable; "
    "dropped: any other 4xx).",
    labels=("outcome",),
)


@dataclass(frozen=True)
class ForwardSettings:
    url: str
    auth: RemoteAuth = field(default_factory=RemoteAuth)
    batch_samples: int = 5_000
    flush_interval_s: float = 1.0
    timeout_s: float = 30.0
    min_backoff_s: float = 0.1
    max_backoff_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ForwardSettings | None:
        if settings.metrics_remote_write_url is None:
            return None
        return cls(
            url=settings.metrics_remote_write_url,
            auth=RemoteAuth(
                settings.metrics_remote_write_bearer_token,
                settings.metrics_remote_write_username,
                settings.metrics_remote_write_password,
            ),
            batch_samples=settings.metrics_remote_write_batch_samples,
            flush_interval_s=settings.metrics_remote_write_flush_interval_s,
            timeout_s=settings.metrics_remote_write_timeout_s,
            min_backoff_s=settings.metrics_remote_write_min_backoff_s,
            max_backoff_s=settings.metrics_remote_write_max_backoff_s,
        )


@dataclass
class _Pending:
    """What has been pulled and not yet acknowledged: the messages, and their samples cut
    into requests of at most ``batch_samples``."""

    msgs: list[Msg] = field(default_factory=list)
    requests: list[WriteRequestBuilder] = field(default_factory=list)
    samples: int = 0
    since: float = 0.0  # monotonic time of the first message held


class Forwarder:
    def __init__(self, bus: Any, settings: ForwardSettings, spec: ConsumerSpec = FORWARD_CONSUMER):
        self._bus = bus  # () -> EventBus: the runtime connects after wiring
        self.settings = settings
        self.spec = spec
        self.labels = LabelCache()
        self.session: aiohttp.ClientSession | None = None
        self.sent = 0
        self.dropped = 0
        self.retries = 0
        self.last_error: str | None = None  # of the last request; None once one succeeds
        self.last_drop: str | None = None  # why the store last refused a batch for good
        self.backlog_since: float | None = None  # monotonic: failing since
        self.subscribed = asyncio.Event()

    async def open(self) -> None:
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    @property
    def bus(self) -> EventBus:
        bus: EventBus = self._bus()
        return bus

    async def run_forever(self) -> None:
        """Pull, batch, send, acknowledge; the runtime restarts it after a crash."""
        if self.session is None:
            await self.open()
        assert self.session is not None
        sender = RemoteWriteSender(
            self.session, self.settings.url, self.settings.auth, self.settings.timeout_s
        )
        js = self.bus.js
        subscription = await js.pull_subscribe(
            self.spec.filter_subject,
            durable=self.spec.durable,
            stream=self.spec.stream.name,
            config=self.spec.consumer_config(),
        )
        self.subscribed.set()
        pending = _Pending()
        try:
            while True:
                msgs = await self._pull(subscription, pending)
                for msg in msgs:
                    await self._take(msg, pending)
                if pending.msgs and (
                    pending.samples >= self.settings.batch_samples
                    or len(pending.msgs) >= MAX_MESSAGES_HELD
                    or time.monotonic() - pending.since >= self.settings.flush_interval_s
                ):
                    await self._flush(sender, pending)
                    pending = _Pending()
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _pull(self, subscription: Any, pending: _Pending) -> list[Msg]:
        """What has arrived, waiting at most until the held batch is due."""
        if pending.msgs:
            wait = pending.since + self.settings.flush_interval_s - time.monotonic()
            if wait <= 0:
                return []
        else:
            wait = FETCH_TIMEOUT_S
        room = MAX_MESSAGES_HELD - len(pending.msgs)
        try:
            msgs: list[Msg] = await subscription.fetch(1, timeout=max(wait, 0.01))
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError):
            await asyncio.sleep(0.5)
            return []
        # then, without waiting, what the durable says is pending behind it (a waiting
        # multi-message fetch can leave a pull request behind; see shared.consumer)
        behind = min(room - 1, msgs[-1].metadata.num_pending or 0)
        if behind > 0:
            with contextlib.suppress(TimeoutError, nats.errors.TimeoutError):
                msgs += await subscription.fetch(behind, timeout=FETCH_TIMEOUT_S)
        return msgs

    async def _take(self, msg: Msg, pending: _Pending) -> None:
        if not pending.msgs:
            pending.since = time.monotonic()
        pending.msgs.append(msg)
        try:
            event = decode_event(msg.data)
        except UndecodableEvent as exc:
            meta = msg.metadata
            await dead_letter(
                self.bus, self.spec, msg, meta.num_delivered, meta.sequence.stream, str(exc)
            )
            return
        if not isinstance(event, SamplesIngested | SampleBlock):
            return
        limit = self.settings.batch_samples
        samples = event.all_samples()
        for sample in samples:
            if not pending.requests or len(pending.requests[-1]) >= limit:
                pending.requests.append(WriteRequestBuilder(self.labels))
            ts = sample.get("timestamp")
            seconds = event.received_at if ts is None else ts
            pending.requests[-1].add(
                sample["name"],
                sample.get("labels") or {},
                sample["value"],
                round(seconds * 1000),
            )
        pending.samples += len(samples)

    async def _flush(self, sender: RemoteWriteSender, pending: _Pending) -> None:
        """Send every request of the batch (each until the store stored or refused it),
        then acknowledge the batch's messages."""
        for request in pending.requests:
            body = request.encode()
            answer = await self._deliver(sender, body, pending.msgs)
            if answer.verdict == "stored":
                self.sent += len(request)
                FORWARDED_SAMPLES.inc(len(request), outcome="sent")
            else:
                self.dropped += len(request)
                self.last_drop = answer.reason
                FORWARDED_SAMPLES.inc(len(request), outcome="dropped")
                log.warning(
                    "remote-write store refused a batch; dropped",
                    extra={
                        "consumer": self.spec.durable,
                        "samples": len(request),
                        "series": request.series,
                        "error": answer.reason,
                    },
                )
        for msg in pending.msgs:
            await msg.ack()

    async def _deliver(self, sender: RemoteWriteSender, body: bytes, held: list[Msg]) -> Answer:
        """Send until the store stores or refuses ``body``; retries never end."""
        backoff = self.settings.min_backoff_s
        while True:
            answer = await sender.send(body)
            if answer.verdict != "retry":
                REMOTE_WRITE_REQUESTS.inc(
                    outcome="stored" if answer.verdict == "stored" else "dropped"
                )
                self.last_error = None if answer.verdict == "stored" else answer.reason
                self.backlog_since = None
                return answer
            REMOTE_WRITE_REQUESTS.inc(outcome="retried")
            self.retries += 1
            if self.backlog_since is None:
                self.backlog_since = time.monotonic()
                log.warning(
                    "remote-write store failed; retrying",
                    extra={"consumer": self.spec.durable, "error": answer.reason},
                )
            self.last_error = answer.reason
            delay = min(max(backoff, answer.retry_after_s), self.settings.max_backoff_s)
            await self._hold(held, delay)
            backoff = min(backoff * 2, self.settings.max_backoff_s)

    async def _hold(self, held: list[Msg], delay: float) -> None:
        """Wait ``delay`` while telling JetStream the held messages are still being worked
        on, so they are not handed out again behind the batch."""
        deadline = time.monotonic() + delay
        while True:
            for msg in held:
                with contextlib.suppress(Exception):  # the broker away: redelivery is harmless
                    await msg.in_progress()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, PROGRESS_EVERY_S))

    async def consuming(self) -> None:
        """The service is ready once the durable exists and is pulled from."""
        await asyncio.wait_for(self.subscribed.wait(), SUBSCRIBE_TIMEOUT_S)

    def status(self) -> dict[str, Any]:
        """Figures for the metrics service's heartbeat."""
        failing = self.backlog_since
        return {
            "remote_write": {
                "sent": self.sent,
                "dropped": self.dropped,
                "retries": self.retries,
                "failing_for_s": None if failing is None else round(time.monotonic() - failing, 1),
                "last_error": self.last_error,
                "last_drop": self.last_drop,
            }
        }


def forward_samples(runtime: ServiceRuntime, settings: Settings) -> Forwarder | None:
    """Run the forwarder in ``runtime`` when a remote-write URL is configured."""
    configured = ForwardSettings.from_settings(settings)
    if configured is None:
        return None
    forwarder = Forwarder(lambda: runtime.bus, configured)
    runtime.on_start(forwarder.open)
    runtime.background(forwarder.run_forever)
    runtime.ready_when(forwarder.consuming)
    runtime.report_status(forwarder.status)
    runtime.on_stop(forwarder.close)
    return forwarder
