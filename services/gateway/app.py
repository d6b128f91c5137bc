"""Wiring of the gateway: read-model consumers, heartbeat listener, and the HTTP server
running inside the service runtime."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI
from nats.aio.subscription import Subscription
from sqlalchemy.ext.asyncio import AsyncConnection

from services.gateway import identity
from services.gateway.api import create_app
from services.gateway.common.projection import Projection, projection_handler
from services.gateway.common.state import GatewayState
from services.gateway.common.tables import SERVICE, metadata
from services.gateway.health.liveness import heartbeat_listener
from services.gateway.http_limits import BoundedConfig, HttpLimits
from services.gateway.live.router import EVENTS_PATH
from services.gateway.live.stream import LiveStream
from services.gateway.logs.tail import LogTails
from services.gateway.metrics import rwscan
from services.gateway.sections import PROJECTIONS
from shared import subjects
from shared.bus import EventBus, Recorded, log_session
from shared.config import VigilConfig, load_config
from shared.consumer import ConsumerSpec
from shared.db import ProjectionStore, create_engine
from shared.openfiles import raise_file_limit
from shared.runtime import ServiceRuntime
from shared.settings import Settings

log = logging.getLogger(__name__)

HTTP_SHUTDOWN_S = 5
REBUILD_BATCH = 500


class EmbeddedHttpServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service runtime owns SIGINT/SIGTERM
    and stops this server together with the consumers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def tls_options(settings: Settings) -> dict[str, str]:
    """uvicorn's TLS arguments, after loading the pair once so that a wrong file stops the
    gateway at start with its name instead of failing inside the server."""
    if settings.tls_cert is None or settings.tls_key is None:
        return {}
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            settings.tls_cert, settings.tls_key
        )
    except (OSError, ssl.SSLError) as exc:
        raise RuntimeError(
            f"VIGIL_TLS_CERT={settings.tls_cert}, VIGIL_TLS_KEY={settings.tls_key}: "
            f"cannot be loaded as a certificate and its key ({exc})"
        ) from exc
    return {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}


class HttpServer:
    """The REST API, live stream and dashboard, served by uvicorn as a runtime task.

    Connections are bounded (see ``http_limits``): the cap follows the open-file limit,
    which is first raised to its hard maximum.
    """

    def __init__(
        self, app: FastAPI, settings: Settings, live: LiveStream, tails: LogTails | None = None
    ):
        self.live = live
        self.tails = tails
        self.limits = HttpLimits.of(settings, raise_file_limit())
        config = BoundedConfig(
            app,
            self.limits,
            streams=frozenset({EVENTS_PATH}),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            timeout_graceful_shutdown=HTTP_SHUTDOWN_S,
            # forwarded headers are believed only from VIGIL_TRUSTED_PROXIES (surface)
            proxy_headers=False,
            **tls_options(settings),
        )
        self.connections = config.connections
        self.server = EmbeddedHttpServer(config)

        self.failed = False

    @property
    def started(self) -> bool:
        return self.server.started

    async def listening(self, within_s: float = 10.0) -> None:
        """Return once the port is bound; raise if it cannot be, so the process fails
        loudly instead of reporting ready with nothing listening."""
        deadline = asyncio.get_running_loop().time() + within_s
        while not self.server.started:
            where = f"{self.server.config.host}:{self.server.config.port}"
            if self.failed:
                raise RuntimeError(f"the HTTP server could not listen on {where}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"the HTTP server did not start on {where}")
            await asyncio.sleep(0.02)

    async def _serve(self) -> None:
        try:
            await self.server.serve()
        except SystemExit:  # uvicorn exits the process when it cannot bind
            self.failed = True
            log.error(
                "HTTP server could not start",
                extra={"host": self.server.config.host, "port": self.server.config.port},
            )

    async def run(self) -> None:
        serving = asyncio.create_task(self._serve())
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            # end live streams first, or open SSE responses would hold the server up
            self.live.close()
            if self.tails is not None:
                self.tails.close()
            self.server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(serving, HTTP_SHUTDOWN_S + 1)
            raise


@dataclass
class Gateway:
    runtime: ServiceRuntime
    state: GatewayState
    app: FastAPI
    http: HttpServer


PROJECTION_BATCH = 128  # events per transaction when a burst (an alert storm) arrives


def consumer_spec(projection: Projection) -> ConsumerSpec:
    return ConsumerSpec(
        durable=projection.name,
        stream=projection.stream,
        filter_subject=projection.filter_subject,
        batch=PROJECTION_BATCH,
    )


def projection_store(settings: Settings) -> ProjectionStore:
    return ProjectionStore(create_engine(settings.database_url_for(SERVICE)), metadata, SERVICE)


def build_gateway(settings: Settings, config: VigilConfig | None = None) -> Gateway:
    """The gateway with its parts exposed, so tests can drive the HTTP app directly."""
    if config is None:
        load_config(settings.config)  # the gateway needs no rules, but a bad file should stop it
    runtime = ServiceRuntime(SERVICE, settings)
    store = projection_store(settings)
    state = GatewayState(settings=settings, store=store, bus_of=lambda: runtime.bus)
    app = create_app(state)
    http = HttpServer(app, settings, state.live, state.log_tails)
    subscriptions: list[Subscription] = []

    async def prepare() -> None:
        if not rwscan.COMPILED:
            log.warning(
                "the remote-write reader runs in pure Python (no C compiler when Vigil was "
                "installed): remote write is about a hundred times slower; install gcc and "
                "reinstall to build it"
            )
        await store.create_all()
        for projection in PROJECTIONS:
            state.progress.advance(projection.name, await store.last_seq(projection.name))
        subscriptions.append(
            await runtime.bus.nc.subscribe(
                f"{subjects.HEARTBEATS}.*", cb=heartbeat_listener(state.liveness)
            )
        )

    async def close() -> None:
        state.live.close()
        for subscription in subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        await store.dispose()

    runtime.on_start(prepare)
    runtime.watch_database(store.engine)
    identity.attach(runtime, app)
    for projection in PROJECTIONS:
        runtime.consume_batches(
            consumer_spec(projection),
            projection_handler(state, projection),
            functools.partial(store.last_seq, projection.name),
        )
    runtime.background(http.run)

    async def watch_ingest_backlog() -> None:
        await state.ingest.watch(state.bus_of)

    async def watch_log_backlog() -> None:
        await state.log_ingest.watch(state.bus_of)

    runtime.background(watch_ingest_backlog)
    runtime.background(watch_log_backlog)

    async def watch_health() -> None:
        await state.health.watch(state.bus)

    async def send_watchdog() -> None:
        await state.health.send_watchdog(state.bus)

    runtime.background(watch_health)
    runtime.background(send_watchdog)
    runtime.ready_when(http.listening)
    runtime.on_stop(close)
    return Gateway(runtime=runtime, state=state, app=app, http=http)


def build(settings: Settings, config: VigilConfig | None = None) -> ServiceRuntime:
    return build_gateway(settings, config).runtime


async def rebuild(settings: Settings) -> None:
    """Drop the read model and replay all five streams into it; run with the gateway stopped.

    Events are applied in batches, each batch in one transaction with its checkpoint, so
    the checkpoints end at the replayed position and the live consumers resume from there.
    """
    store = projection_store(settings)
    try:
        async with log_session(settings, f"{SERVICE}-rebuild") as bus:
            await store.reset()
            for projection in PROJECTIONS:
                replayed = await _replay(bus, store, projection)
                log.info(
                    "rebuilt projection",
                    extra={"projection": projection.name, "events": replayed},
                )
            for name, replayed in (await identity.rebuild(bus, store.engine)).items():
                log.info("rebuilt projection", extra={"projection": name, "events": replayed})
    finally:
        await store.dispose()


async def _replay(bus: EventBus, store: ProjectionStore, projection: Projection) -> int:
    batch: list[Recorded] = []
    replayed = 0
    async for recorded in bus.replay(projection.stream.name, projection.filter_subject):
        batch.append(recorded)
        if len(batch) >= REBUILD_BATCH:
            replayed += await _apply_batch(store, projection, batch)
            batch = []
    if batch:
        replayed += await _apply_batch(store, projection, batch)
    return replayed


async def _apply_batch(
    store: ProjectionStore, projection: Projection, batch: list[Recorded]
) -> int:
    async def change(conn: AsyncConnection) -> None:
        for recorded in batch:
            await projection.project(conn, recorded.event, recorded.seq)

    await store.apply(projection.name, batch[-1].seq, change)
    return len(batch)
