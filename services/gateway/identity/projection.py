"""A section's own read model fed by its own durable consumer: checkpointed in the section's
checkpoint table, in the same transaction as the change, and never shown on the live stream
(identity and audit events are not for every viewer)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.gateway.common.state import ProjectionProgress
from shared.bus import EventBus
from shared.consumer import BatchHandler, ConsumerSpec, Delivery
from shared.db import ProjectionStore
from shared.events import Event
from shared.streams import StreamSpec

Projector = Callable[[AsyncConnection, Event, int], Awaitable[None]]
AfterCommit = Callable[[list[tuple[Event, int]]], None]
PROJECTION_BATCH = 128
REBUILD_BATCH = 500


@dataclass
class SectionProjection:
    name: str  # durable consumer and checkpoint key
    stream: StreamSpec
    filter_subject: str
    project: Projector
    store: ProjectionStore
    progress: ProjectionProgress

    @classmethod
    def of(
        cls,
        name: str,
        stream: StreamSpec,
        filter_subject: str,
        project: Projector,
        engine: AsyncEngine,
        metadata: MetaData,
        section: str,
    ) -> SectionProjection:
        store = ProjectionStore(engine, metadata, section)
        return cls(name, stream, filter_subject, project, store, ProjectionProgress(store))

    def consumer_spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            durable=self.name,
            stream=self.stream,
            filter_subject=self.filter_subject,
            batch=PROJECTION_BATCH,
        )

    async def prepare(self) -> None:
        await self.store.create_all()
        self.progress.advance(self.name, await self.store.last_seq(self.name))

    def checkpoint(self) -> Callable[[], Awaitable[int]]:
        return functools.partial(self.store.last_seq, self.name)

    def handler(self, after_commit: AfterCommit | None = None) -> BatchHandler:
        async def project(items: list[tuple[Event, Delivery]]) -> None:
            applied: list[tuple[Event, int]] = []

            async def change(conn: AsyncConnection, last: int) -> None:
                applied.clear()  # a retried transaction starts over
                for event, delivery in items:
                    if delivery.stream_seq > last:
                        await self.project(conn, event, delivery.stream_seq)
                        applied.append((event, delivery.stream_seq))

            through = items[-1][1].stream_seq
            await self.store.apply_through(self.name, through, change)
            if after_commit is not None:
                after_commit(applied)
            self.progress.advance(self.name, through)

        project.__doc__ = f"Projects {self.stream.name} into the gateway read model."
        return project

    async def rebuild(self, bus: EventBus) -> int:
        """Drop this section's tables and replay its stream into them (gateway stopped)."""
        await self.store.reset()
        batch: list[tuple[Event, int]] = []
        replayed = 0
        async for recorded in bus.replay(self.stream.name, self.filter_subject):
            batch.append((recorded.event, recorded.seq))
            if len(batch) >= REBUILD_BATCH:
                replayed += await self._apply(batch)
                batch = []
        if batch:
            replayed += await self._apply(batch)
        return replayed

    async def _apply(self, batch: list[tuple[Event, int]]) -> int:
        async def change(conn: AsyncConnection) -> None:
            for event, seq in batch:
                await self.project(conn, event, seq)

        await self.store.apply(self.name, batch[-1][1], change)
        return len(batch)
