"""What every service process shares: connect, declare streams, consume, beat, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from faststream.nats import NatsBroker
from faststream.nats.security import NatsUserPassword
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import selflogs, subjects
from shared.bus import EventBus, settle
from shared.consumer import (
    BatchHandler,
    Checkpoint,
    ConsumerSpec,
    Handler,
    consume_batches_forever,
    release_held,
    subscribe,
)
from shared.faults import FaultBoard, disk_state
from shared.heartbeat import DatabaseProbe, beat_forever
from shared.natsauth import credentials_for
from shared.redrive import Redriver
from shared.selfmetrics import REGISTRY, Registry, exposition
from shared.sentry import init_sentry
from shared.settings import Settings
from shared.streams import ensure_streams

log = logging.getLogger(__name__)

GC_THRESHOLDS = (50_000, 20, 100)
# Each step of a stop is bounded: a stop that hangs is worse than one that abandons
# a subscription, since everything the service owns is in the log anyway.
STOP_STEP_TIMEOUT_S = 5.0
SUBSCRIBE_TIMEOUT_S = 30.0
# After a stop signal the process is gone within this, stuck or not: the supervisor's
# children get SIGTERM when it dies, and nothing may outlive it for long.
EXIT_DEADLINE_S = 8.0
EXIT_ABANDONED = 70  # EX_SOFTWARE: the stop did not finish and was cut short

Hook = Callable[[], Coroutine[Any, Any, None]]
RequestHandler = Callable[[dict[str, Any]], Awaitable[Any]]


class ServiceRuntime:
    """Wiring for one service: its broker, event bus, consumers, request handlers and tasks."""

    def __init__(self, name: str, settings: Settings):
        if not settings.nats_url:
            raise ValueError("NATS_URL is required to run a service")
        self.name = name
        self.settings = settings
        credentials = credentials_for(settings, name)
        self._inbox_prefix = credentials.inbox_prefix if credentials is not None else "_INBOX"
        self.broker = NatsBroker(
            settings.nats_url,
            name=f"vigil-{name}",
            # its own user and inbox when the server requires credentials
            security=NatsUserPassword(credentials.user, credentials.password)
            if credentials is not None
            else None,
            inbox_prefix=self._inbox_prefix,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            logger=logging.getLogger("faststream.broker"),  # our log format, not stdout
            log_level=logging.DEBUG,
            reconnected_cb=self._reconnected,
            disconnected_cb=self._disconnected,
            graceful_timeout=STOP_STEP_TIMEOUT_S,
            drain_timeout=int(STOP_STEP_TIMEOUT_S),
            # handlers take the raw message (see shared.consumer); dependency injection
            # would resolve each message's context in a worker thread
            apply_types=False,
        )
        self._bus: EventBus | None = None
        self._start_hooks: list[Hook] = []
        self._stop_hooks: list[Hook] = []
        self._stopping_hooks: list[Hook] = []
        self._broker_hooks: list[tuple[Hook, Hook]] = []  # (on loss, on return)
        self._responders: list[tuple[str, RequestHandler]] = []
        self._background: list[Hook] = []
        self._ready_checks: list[Hook] = []
        self._subscribed: list[tuple[str, asyncio.Event]] = []  # batched consumers
        self._tasks: list[asyncio.Task[None]] = []
        self._ordered: list[ConsumerSpec] = []
        self._stopping = False
        self._status: list[Callable[[], dict[str, Any]]] = []
        self.faults = FaultBoard()
        # figures read from this runtime's objects (open alerts, …): rendered after the
        # process's shared registry in its /metrics
        self.figures = Registry()
        self.ready = asyncio.Event()
        self.redriver = Redriver(name, lambda: self.bus)

    @property
    def bus(self) -> EventBus:
        if self._bus is None:
            raise RuntimeError(f"{self.name} is not connected yet")
        return self._bus

    def consume(self, spec: ConsumerSpec, handler: Handler) -> None:
        subscribe(self.broker, lambda: self.bus, spec, handler, self.faults, self._inbox_prefix)
        self.redriver.add(spec, handler)  # its dead letters can be handed to it again
        if spec.ordered:
            self._ordered.append(spec)

    def consume_batches(
        self, spec: ConsumerSpec, handler: BatchHandler, checkpoint: Checkpoint | None = None
    ) -> None:
        """Like ``consume``, but many messages per handler call (one transaction for all).

        ``checkpoint`` returns the last stream sequence the handler applied; the durable
        then resumes right after it (see ``resume_at_checkpoint``).
        """
        subscribed = asyncio.Event()
        self._subscribed.append((spec.durable, subscribed))
        self.redriver.add_read_model(spec)
        self._background.append(
            lambda: consume_batches_forever(
                lambda: self.bus, spec, handler, checkpoint, self.faults, subscribed
            )
        )

    def respond(self, subject: str, handler: RequestHandler) -> None:
        self._responders.append((subject, handler))

    def report_status(self, part: Callable[[], dict[str, Any]]) -> None:
        """Figures this service adds to its heartbeat (merged into one object)."""
        self._status.append(part)

    def watch_database(self, engine: AsyncEngine) -> None:
        """Probe the service's database on the heartbeat timer and report it in beats."""
        probe = DatabaseProbe(engine)

        async def watch() -> None:
            await probe.watch(self.settings.heartbeat_interval_s)

        self.background(watch)
        self.report_status(probe.report)

    def status(self) -> dict[str, Any]:
        """What the heartbeat says besides liveness: faults, disk, and added figures."""
        report: dict[str, Any] = {"faults": self.faults.snapshot()}
        disk = disk_state(self.settings.data_dir)
        if disk is not None:
            report["disk"] = disk.as_dict()
        for part in self._status:
            report.update(part())
        return report

    def on_start(self, hook: Hook) -> None:
        """Runs after connecting, before consumers start (load state, create tables)."""
        self._start_hooks.append(hook)

    def on_stop(self, hook: Hook) -> None:
        self._stop_hooks.append(hook)

    def on_broker_loss(self, lost: Hook, back: Hook) -> None:
        """``lost`` runs when the connection to the broker drops, ``back`` once it is up
        again (after this runtime's own repairs): a restarted server may have forgotten
        what it delivered, and hand it over again as if new."""
        self._broker_hooks.append((lost, back))

    def on_stopping(self, hook: Hook) -> None:
        """Runs first in a stop, while the broker is still connected: for work that must not
        start once its outcome could no longer be recorded."""
        self._stopping_hooks.append(hook)

    def ready_when(self, check: Hook) -> None:
        """Awaited before the service calls itself ready; raising stops the start."""
        self._ready_checks.append(check)

    def background(self, task: Hook) -> None:
        """A long-running coroutine started once the service is ready."""
        self._background.append(task)

    async def start(self) -> None:
        # tasks and threads started from here on are this service's (its own log lines)
        selflogs.CURRENT_SERVICE.set(self.name)
        nc = await self.broker.connect()
        self._bus = EventBus(nc)
        if self.settings.self_logs:
            queue = selflogs.install(self.name)
            self._tasks.append(asyncio.create_task(selflogs.ship_forever(queue, self._publish)))
        await ensure_streams(self._bus.js, self.settings)
        for hook in self._start_hooks:
            await hook()
        responders = list(self._responders)
        # its own figures, for the gateway's /metrics/<service>
        responders.append((subjects.self_metrics(self.name), self._self_metrics))
        if self.redriver.consumers:
            responders.append((self.redriver.subject, self.redriver.retry))
        for subject, handler in responders:
            await self._bus.serve(subject, handler, queue=f"vigil-{self.name}")
        await settle(nc)  # subscriptions are live on the server before anyone is told we are ready
        for spec in self._ordered:
            await release_held(self._bus.js, spec)
        await self.broker.start()
        self._tasks.append(
            asyncio.create_task(
                beat_forever(nc, self.name, self.settings.heartbeat_interval_s, self.status)
            )
        )
        self._tasks.extend(asyncio.create_task(self._supervised(task)) for task in self._background)
        await self._consuming()
        for check in self._ready_checks:
            await check()
        # Everything built so far lives as long as the process: keep it out of the
        # collector's scans, and collect less often; full collections of a large heap
        # otherwise show up as 100 ms stalls on the paging path.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        self.ready.set()
        log.info("service ready", extra={"service": self.name})

    async def _publish(self, subject: str, event: Any) -> int:
        return await self.bus.publish(subject, event, timeout=selflogs.PUBLISH_TIMEOUT_S)

    async def _self_metrics(self, _: dict[str, Any]) -> dict[str, str]:
        return {"text": exposition(self.name, REGISTRY, self.figures)}

    async def _consuming(self) -> None:
        """Ready means consuming: wait until every batched durable has its subscription."""
        for durable, subscribed in self._subscribed:
            try:
                await asyncio.wait_for(subscribed.wait(), SUBSCRIBE_TIMEOUT_S)
            except TimeoutError:
                raise RuntimeError(
                    f"{self.name}: consumer {durable} did not subscribe within "
                    f"{SUBSCRIBE_TIMEOUT_S:g} s"
                ) from None

    async def _reconnected(self) -> None:
        """Release what a restarted nats-server holds for an ordered durable.

        Consumer state is written asynchronously, so a server killed and restarted may
        believe a message is still out with this process; the durable would then deliver
        nothing for the ack wait (see ``release_held``). Handlers are idempotent, so
        releasing a message this process does hold only delivers it once more.
        """
        if self._bus is None or self._stopping:
            return
        for _, back in self._broker_hooks:
            await self._bounded("broker return hook", back())
        for spec in self._ordered:
            try:
                await release_held(self._bus.js, spec)
            except Exception:
                log.warning(
                    "could not release a held message after reconnecting",
                    exc_info=True,
                    extra={"service": self.name, "consumer": spec.durable},
                )

    async def _disconnected(self) -> None:
        for lost, _ in self._broker_hooks:
            await self._bounded("broker loss hook", lost())

    async def _supervised(self, task: Hook) -> None:
        """Keep a background loop alive: a crash is logged and the loop restarted."""
        while True:
            try:
                await task()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._stopping:
                    # nats-py turns a cancellation into ConnectionClosedError when the
                    # connection is closing; that is the stop, not a crash
                    return
                log.exception("background task failed; restarting", extra={"service": self.name})
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for hook in self._stopping_hooks:
            await self._bounded("stopping hook", hook())
        stuck = await _cancel_all(self._tasks, STOP_STEP_TIMEOUT_S)
        if stuck:
            log.warning(
                "background tasks did not stop; abandoning them",
                extra={"service": self.name, "tasks": stuck},
            )
        self._tasks.clear()
        if self.settings.self_logs:
            selflogs.uninstall(self.name)
        nc = self._bus.nc if self._bus is not None else None
        if not await self._bounded("broker stop", self.broker.stop()) and nc is not None:
            await self._bounded("connection close", nc.close())
        for hook in self._stop_hooks:
            await self._bounded("stop hook", hook())
        self._bus = None
        # A SQLite connection abandoned by a task cancelled mid-transaction is closed (and
        # its write lock released) only when its reference cycle is collected: do it now, so
        # whatever opens the database next in this process is not locked out.
        gc.collect()

    async def _bounded(self, step: str, work: Awaitable[Any]) -> bool:
        """Run one step of a stop; a failure or a hang is logged, never raised."""
        try:
            await asyncio.wait_for(work, STOP_STEP_TIMEOUT_S)
            return True
        except TimeoutError:
            log.warning("%s timed out", step, extra={"service": self.name})
        except Exception:
            log.warning("%s failed", step, exc_info=True, extra={"service": self.name})
        return False

    async def run_until_signalled(self) -> None:
        """Run until SIGTERM/SIGINT, then stop; the process is gone within ``EXIT_DEADLINE_S``.

        A signal during start ends the start too (it may be waiting for a broker that died
        with the supervisor). What a stop cannot finish in time is abandoned by a hard exit
        from a thread, which works even when the loop or a worker thread is stuck: all that
        matters is in the streams already. A second signal exits at once.
        """
        init_sentry(self.name)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                os._exit(EXIT_ABANDONED)
            stop.set()
            exit_after(EXIT_DEADLINE_S)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        starting = asyncio.create_task(self.start())
        signalled = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, signalled}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a failed start fails the process
            print(f"vigil {self.name} ready", flush=True)
            await signalled
        else:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
        await self.stop()


def exit_after(seconds: float) -> threading.Timer:
    """Exit the process hard after ``seconds`` unless it has ended by then."""
    timer = threading.Timer(seconds, os._exit, args=(EXIT_ABANDONED,))
    timer.daemon = True
    timer.start()
    return timer


async def _cancel_all(tasks: list[asyncio.Task[None]], within_s: float) -> int:
    """Cancel ``tasks`` and wait for them; returns how many are still running.

    A library may swallow one cancellation (and loop on), so the cancel is repeated
    until the task ends or time runs out.
    """
    pending = {task for task in tasks if not task.done()}
    deadline = asyncio.get_running_loop().time() + within_s
    while pending:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(0.2, remaining))
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved
    return len(pending)
