"""The owner's side of configured items: replay at start, provision the file's items,
and the create/update/delete commands, each applied live before it is answered.

One owner per kind per deployment (alerts for rules, the notifier for channels, contacts,
schedules and escalation policies). Every
append names the subject sequence it decided on, so a concurrent writer causes a
Conflict, and the owner reloads the subject and decides again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel

from shared.aggregate import AggregateLog, BookMemory, Snapshot
from shared.bus import EventBus
from shared.commands import CommandResult
from shared.configbook import ConfigBook, ConfigKind, Position
from shared.errors import Conflict, InvalidInput, NotFound
from shared.events import Event, derived_id
from shared.streams import CONFIG

log = logging.getLogger(__name__)

CONFLICT_ATTEMPTS = 5
FILE_ACTOR = "configuration file"

T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class ItemCodec(Generic[T]):
    """How an item goes between its clear form (in use) and its stored form (in events).

    Rules store as they are; channels encrypt their secret. ``carry`` lets an update keep
    what the caller did not send again (a masked secret); ``rewrap`` re-encrypts a stored
    item with the newest key, or returns None when it already is.
    """

    seal: Callable[[T], T]
    open: Callable[[T], T]
    carry: Callable[[T, T], T]
    rewrap: Callable[[T], T | None]
    digest: Callable[[bytes], str]


def _same(item: T) -> T:
    return item


def _keep_new(_old: T, new: T) -> T:
    return new


def _unchanged(_item: T) -> T | None:
    return None


def _plain_digest(data: bytes) -> str:
    return derived_id("config-digest", data.decode())


def plain_codec() -> ItemCodec[Any]:
    return ItemCodec(_same, _same, _keep_new, _unchanged, _plain_digest)


Applied = Callable[[list[T]], Awaitable[None]]


class ConfigOwner(Generic[T]):
    """Keeps one kind's items on the log and in memory; tells ``applied`` every change."""

    def __init__(
        self,
        kind: ConfigKind[T],
        bus: Callable[[], EventBus],
        file_items: list[T],
        file_path: str,
        applied: Applied[T],
        codec: ItemCodec[T] | None = None,
    ):
        self.kind = kind
        self._bus = bus
        self.file_items = list(file_items)
        self.file_path = file_path
        self.applied = applied
        self.codec: ItemCodec[T] = codec if codec is not None else plain_codec()
        self.book: ConfigBook[T] = ConfigBook(kind)
        self.lock = asyncio.Lock()
        # the book holds every item since ``load``: it is the logs' memory
        self.items: AggregateLog[Held[T]] = AggregateLog(
            bus,
            kind.subject,
            Held(),
            functools.partial(_evolve, kind),
            noun=kind.noun,
            attempts=CONFLICT_ATTEMPTS,
            memory=BookMemory(self._recall, self._forget, self._fold),
        )
        self.provisioning: AggregateLog[int] = AggregateLog(
            bus,
            lambda _: kind.provisioned_subject,
            0,
            lambda version, _: version + 1,
            noun=f"provisioned {kind.items_field}",
            attempts=CONFLICT_ATTEMPTS,
            memory=BookMemory(self._recall_provisioned, self._forget_provisioned, self._fold),
        )

    # --- start ----------------------------------------------------------------

    async def start(self) -> None:
        """Replay, provision the file's items, and hand the current set to ``applied``."""
        async with self.lock:
            await self.load()
            await self.provision()
            await self._apply()

    async def load(self) -> None:
        book: ConfigBook[T] = ConfigBook(self.kind)
        bus = self._bus()
        count = 0
        async for recorded in bus.replay(CONFIG.name, f"{self.kind.subject_prefix}.>"):
            book.apply(recorded.event, recorded.seq)
            count += 1
        await self._load_provisioned(book)
        self.book = book
        log.info(
            "configuration loaded",
            extra={
                "kind": self.kind.noun,
                "events": count,
                "api_items": len(book.api_items),
                "file_items": len(book.file_items),
            },
        )

    async def _load_provisioned(self, book: ConfigBook[T]) -> None:
        history = await self._bus().read_subject(self.kind.provisioned_subject)
        for recorded in history:
            book.apply(recorded.event, recorded.seq)

    def _fingerprint(self, items: list[T]) -> str:
        clear = [self.codec.open(item).model_dump(mode="json") for item in items]
        return self.codec.digest(orjson.dumps(clear, option=orjson.OPT_SORT_KEYS))

    async def provision(self) -> int:
        """Make the log hold the file's items; returns how many events that took.

        Nothing is appended when the file says what was provisioned last (the comparison
        is of clear values, so a secret encrypted afresh is not a change). An API item
        whose name the file now takes is deleted first.
        """
        appended = 0
        wanted = [self.codec.open(item) for item in self.file_items]
        for name in [_name(i) for i in wanted if _name(i) in self.book.api_items]:
            await self._append(name, functools.partial(self._deleted, name, FILE_ACTOR))
            appended += 1
            log.warning(
                "the configuration file took the name of an item created through the API; "
                "the API item is deleted",
                extra={"kind": self.kind.noun, "item": name},
            )
        last = list(self.book.file_items.values())
        unchanged = self._fingerprint(last) == self._fingerprint(wanted) and (
            self.book.file_path == self.file_path
        )
        if unchanged and self.book.provisioned.version > 0:
            return appended
        await self._provision_items([self.codec.seal(item) for item in wanted])
        return appended + 1

    async def _provision_items(self, stored: list[T]) -> int:
        def provisioned(version: int) -> list[Event]:
            return [
                self.kind.provisioned.model_validate(
                    {
                        "id": derived_id(
                            "config-provisioned",
                            self.kind.provisioned_aggregate,
                            version + 1,
                            self._fingerprint(stored),
                        ),
                        "aggregate_id": self.kind.provisioned_aggregate,
                        "version": version + 1,
                        "file": self.file_path,
                        self.kind.items_field: stored,
                    }
                )
            ]

        outcome = await self.provisioning.execute(self.kind.provisioned_aggregate, provisioned)
        log.info(
            "configuration file provisioned",
            extra={"kind": self.kind.noun, "items": len(stored), "stream_seq": outcome.last_seq},
        )
        return outcome.last_seq

    # --- commands ---------------------------------------------------------------

    async def create(self, item: T, by: str) -> CommandResult:
        name = _name(item)
        async with self.lock:
            self._refuse_file_managed(name)
            if name in self.book.api_items:
                raise Conflict(
                    f"name: a {self.kind.noun} named {name!r} exists already; change it with PUT",
                    field="name",
                )
            sealed = self.codec.seal(item)
            return await self._append(name, functools.partial(self._created, sealed, by))

    async def update(self, name: str, item: T, by: str) -> CommandResult:
        if _name(item) != name:
            raise InvalidInput(
                f"name: must be the {self.kind.noun}'s name, {name!r} "
                "(renaming is a delete and a create)",
                field="name",
            )
        async with self.lock:
            self._refuse_file_managed(name)
            current = self._api_item(name)
            wanted = self.codec.carry(self.codec.open(current), item)
            if self.codec.open(current) == wanted:
                return self._result(name, self.book.position(name))
            sealed = self.codec.seal(wanted)
            return await self._append(name, functools.partial(self._updated, sealed, by))

    async def delete(self, name: str, by: str) -> CommandResult:
        async with self.lock:
            self._refuse_file_managed(name)
            self._api_item(name)
            return await self._append(name, functools.partial(self._deleted, name, by))

    async def reencrypt(self, by: str) -> tuple[int, int]:
        """Encrypt every current item again with the newest key: (items changed, last seq)."""
        changed, seq = 0, 0
        async with self.lock:
            for name, item in list(self.book.api_items.items()):
                rewrapped = self.codec.rewrap(item)
                if rewrapped is not None:
                    result = await self._append(
                        name, functools.partial(self._updated, rewrapped, by)
                    )
                    changed, seq = changed + 1, result.seq
            stored = list(self.book.file_items.values())
            rewrapped_file = [self.codec.rewrap(item) for item in stored]
            if any(r is not None for r in rewrapped_file):
                items = [
                    r if r is not None else i for r, i in zip(rewrapped_file, stored, strict=True)
                ]
                seq = await self._provision_items(items)
                changed += sum(r is not None for r in rewrapped_file)
            if changed:
                await self._apply()
        return changed, seq

    # --- helpers ----------------------------------------------------------------

    def _refuse_file_managed(self, name: str) -> None:
        if self.book.source_of(name) == "file":
            raise Conflict(self.book.managed_by_file(name), field="name")

    def _api_item(self, name: str) -> T:
        try:
            return self.book.api_items[name]
        except KeyError:
            raise NotFound(f"name: no {self.kind.noun} {name!r}", field="name") from None

    def _created(self, item: T, by: str, held: Held[T]) -> list[Event]:
        if held.item is not None:
            return []  # created meanwhile
        return [
            self._event(self.kind.created, _name(item), held, by, **{self.kind.item_field: item})
        ]

    def _updated(self, item: T, by: str, held: Held[T]) -> list[Event]:
        if held.item is None:
            raise NotFound(f"name: no {self.kind.noun} {_name(item)!r}", field="name")
        return [
            self._event(self.kind.updated, _name(item), held, by, **{self.kind.item_field: item})
        ]

    def _deleted(self, name: str, by: str, held: Held[T]) -> list[Event]:
        if held.item is None:
            return []
        return [self._event(self.kind.deleted, name, held, by, name=name)]

    def _event(
        self, cls: type[Event], item_name: str, held: Held[T], by: str, **payload: Any
    ) -> Event:
        return cls.model_validate(
            {
                "aggregate_id": self.kind.subject(item_name).rsplit(".", 1)[1],
                "version": held.version + 1,
                "by": by,
                **payload,
            }
        )

    def _result(self, name: str, position: Position) -> CommandResult:
        return CommandResult(
            aggregate_id=self.kind.subject(name).rsplit(".", 1)[1],
            version=position.version,
            seq=position.last_seq,
            stream=CONFIG.name,
        )

    async def _append(self, name: str, decide: Callable[[Held[T]], list[Event]]) -> CommandResult:
        """Decide, append with the subject's expected sequence, apply; reload on a clash."""
        outcome = await self.items.execute(name, decide)
        if outcome.appended:
            await self._apply()
        return self._result(name, self.book.position(name))

    # --- the book as the logs' memory ---------------------------------------------

    def _recall(self, name: str) -> Snapshot[Held[T]]:
        position = self.book.position(name)
        return Snapshot(Held(self.book.api_items.get(name), position.version), position.last_seq)

    def _forget(self, name: str) -> None:
        self.book.api_items.pop(name, None)
        self.book.positions.pop(self.kind.subject(name), None)

    def _recall_provisioned(self, _: str) -> Snapshot[int]:
        return Snapshot(self.book.provisioned.version, self.book.provisioned.last_seq)

    def _forget_provisioned(self, _: str) -> None:
        self.book.provisioned, self.book.file_items, self.book.file_path = Position(), {}, ""

    def _fold(self, event: Event, seq: int) -> None:
        self.book.apply(event, seq)

    async def _apply(self) -> None:
        await self.applied([self.codec.open(item) for item in self.book.items()])

    def current(self) -> list[T]:
        """Every item in clear form."""
        return [self.codec.open(item) for item in self.book.items()]


@dataclass(frozen=True)
class Held(Generic[T]):
    """One API item's aggregate: the item in its stored form (None: there is none) and its
    version."""

    item: T | None = None
    version: int = 0


def _evolve(kind: ConfigKind[T], held: Held[T], event: Event) -> Held[T]:
    if isinstance(event, kind.created | kind.updated):
        return Held(kind.item_of(event), event.version)
    if isinstance(event, kind.deleted):
        return Held(None, event.version)
    return held


def _name(item: Any) -> str:
    return str(item.name)
