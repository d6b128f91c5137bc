"""Silences in the alerts service: validation naming the field, Alertmanager's update
semantics, expiry, idempotent retries and rebuild, on a real nats-server with a clock the
test moves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.alerts.app import build
from services.alerts.silences import SilenceBook
from shared import subjects
from shared.bus import EventBus
from shared.commands import CREATE_SILENCE, EXPIRE_SILENCE
from shared.config import VigilConfig
from shared.errors import InvalidInput, InvalidTransition, NotFound
from shared.events import SilenceCreated, SilenceExpired, SilenceUpdated
from shared.settings import Settings
from tests.conftest import RuntimeFactory

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WEB = {"host": "web-1", "alertname": "HighCPU", "severity": "warning"}


@dataclass
class Clock:
    at: datetime = T0

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def iso(at: datetime) -> str:
    return at.isoformat()


def body(**changes: Any) -> dict[str, Any]:
    """Alertmanager's postableSilence: host=web-1 for two hours from now (T0)."""
    base: dict[str, Any] = {
        "matchers": [{"name": "host", "value": "web-1", "isRegex": False, "isEqual": True}],
        "startsAt": iso(T0),
        "endsAt": iso(T0 + timedelta(hours=2)),
        "createdBy": "ann",
        "comment": "deploy",
        "by": "key:ann",
    }
    return {**base, **changes}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def book(bus: EventBus, clock: Clock) -> SilenceBook:
    made = SilenceBook(lambda: bus, clock)
    await made.load()
    return made


async def history(bus: EventBus, silence_id: str) -> list[Any]:
    return [r.event for r in await bus.read_subject(subjects.silence(silence_id))]


async def test_a_silence_is_pending_then_active_then_ends_by_itself(
    book: SilenceBook, clock: Clock
) -> None:
    later = body(startsAt=iso(T0 + timedelta(hours=1)), endsAt=iso(T0 + timedelta(hours=3)))
    made = await book.create(later)
    silence = book.get(made["aggregate_id"])
    assert silence is not None and silence.state(clock()) == "pending"
    assert book.active(WEB, clock()) == []
    assert book.next_change(clock()) == T0 + timedelta(hours=1)

    clock.advance(hours=1)
    [ref] = book.active(WEB, clock())
    assert (ref.kind, ref.id, ref.until) == ("silence", silence.id, T0 + timedelta(hours=3))
    assert ref.detail == "deploy (by ann)"
    assert book.active({**WEB, "host": "web-2"}, clock()) == []
    assert book.next_change(clock()) == T0 + timedelta(hours=3)

    clock.advance(hours=2)
    assert silence.state(clock()) == "expired"
    assert book.active(WEB, clock()) == []
    assert book.next_change(clock()) is None


async def test_a_start_in_the_past_means_now(book: SilenceBook, bus: EventBus) -> None:
    made = await book.create(body(startsAt=iso(T0 - timedelta(days=1))))
    [created] = await history(bus, made["aggregate_id"])
    assert isinstance(created, SilenceCreated)
    assert (created.starts_at, created.time, created.by) == (T0, T0, "key:ann")


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"matchers": []}, "matchers", "at least 1"),
        (
            {"matchers": [{"name": "host", "value": "web-(", "isRegex": True}]},
            "matchers[0].value",
            "invalid regular expression",
        ),
        (
            {"matchers": [{"name": "host", "value": "a"}, {"name": "9x", "value": "b"}]},
            "matchers[1].name",
            "must match",
        ),
        (
            {"matchers": [{"name": "host", "value": ".*", "isRegex": True}]},
            "matchers",
            "would match every alert",
        ),
        (
            {"matchers": [{"name": "host", "value": "web-1", "isEqual": False}]},
            "matchers",
            "would match every alert",
        ),
        (
            {"endsAt": iso(T0 - timedelta(minutes=1)), "startsAt": iso(T0 - timedelta(hours=1))},
            "endsAt",
            "not in the future",
        ),
        ({"endsAt": iso(T0)}, "endsAt", "after startsAt"),
        ({"endsAt": "2026-03-02T12:00:00"}, "endsAt", "timezone"),
        ({"createdBy": ""}, "createdBy", "at least 1"),
        ({"comment": "x" * 2001}, "comment", "at most 2000"),
        ({"matchers": [{"name": "host", "value": "x" * 1001}]}, "matchers[0].value", "1000"),
        (
            {"matchers": [{"name": "host", "value": "a", "isRegex": "maybe"}]},
            "matchers[0].isRegex",
            "bool",
        ),
        ({"startsAt": "soon"}, "startsAt", "datetime"),
    ],
)
async def test_bad_silences_are_refused_naming_the_field(
    book: SilenceBook, bus: EventBus, changes: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await book.create(body(**changes))
    assert refused.value.field == field
    assert refused.value.message.startswith(f"{field}: ")
    assert says in refused.value.message
    assert book.silences == {}
    assert (await bus.js.stream_info("SILENCES")).state.messages == 0  # nothing half-applied


async def test_a_matcher_that_narrows_makes_negative_ones_acceptable(book: SilenceBook) -> None:
    matchers = [
        {"name": "team", "value": "db", "isEqual": False},
        {"name": "severity", "value": "warn.*", "isRegex": True},
    ]
    made = await book.create(body(matchers=matchers))
    assert book.active({"team": "web", "severity": "warning"}, T0)
    assert book.active({"severity": "warning"}, T0)  # a label missing is the empty string
    assert not book.active({"team": "db", "severity": "warning"}, T0)
    assert not book.active({"team": "web", "severity": "critical-warning!"}, T0)
    assert made["version"] == 1


async def test_an_update_with_the_same_matchers_changes_the_silence_in_place(
    book: SilenceBook, bus: EventBus, clock: Clock
) -> None:
    made = await book.create(body())
    silence_id = made["aggregate_id"]
    clock.advance(minutes=10)
    longer = body(id=silence_id, endsAt=iso(T0 + timedelta(hours=5)), comment="longer")
    changed = await book.create(longer)
    assert (changed["aggregate_id"], changed["version"]) == (silence_id, 2)
    events = await history(bus, silence_id)
    assert [type(e) for e in events] == [SilenceCreated, SilenceUpdated]
    assert events[1].ends_at == T0 + timedelta(hours=5) and events[1].comment == "longer"
    silence = book.get(silence_id)
    assert silence is not None and silence.updated_at == clock()

    # sent again: nothing changes, the same answer
    assert await book.create(longer) == changed
    assert len(await history(bus, silence_id)) == 2


async def test_changed_matchers_expire_the_old_silence_and_make_a_new_one(
    book: SilenceBook, bus: EventBus, clock: Clock
) -> None:
    made = await book.create(body())
    old = made["aggregate_id"]
    clock.advance(minutes=5)
    other = [{"name": "host", "value": "web-2"}]
    replaced = await book.create(body(id=old, matchers=other))
    new = replaced["aggregate_id"]
    assert new != old
    assert [type(e) for e in await history(bus, old)] == [SilenceCreated, SilenceExpired]
    [created] = await history(bus, new)
    assert isinstance(created, SilenceCreated)
    assert created.matchers[0].value == "web-2" and created.starts_at == clock()
    assert book.active(WEB, clock()) == []
    assert [r.id for r in book.active({"host": "web-2"}, clock())] == [new]

    # the retry of that request answers the same new silence; the old stays expired once
    assert (await book.create(body(id=old, matchers=other)))["aggregate_id"] == new
    assert len(await history(bus, old)) == 2


async def test_moving_the_start_of_a_silence_in_force_replaces_it(
    book: SilenceBook, bus: EventBus, clock: Clock
) -> None:
    made = await book.create(body())
    clock.advance(minutes=30)
    moved = await book.create(body(id=made["aggregate_id"], startsAt=iso(clock())))
    assert moved["aggregate_id"] != made["aggregate_id"]
    old = book.get(made["aggregate_id"])
    assert old is not None and old.state(clock()) == "expired" and old.ends_at == clock()


async def test_updating_an_expired_silence_makes_a_new_one(book: SilenceBook, clock: Clock) -> None:
    made = await book.create(body())
    clock.advance(hours=3)  # ended by itself
    again = body(id=made["aggregate_id"], endsAt=iso(clock() + timedelta(hours=1)))
    renewed = await book.create(again)
    assert renewed["aggregate_id"] != made["aggregate_id"]
    assert [r.id for r in book.active(WEB, clock())] == [renewed["aggregate_id"]]


async def test_updating_an_unknown_silence_is_not_found(book: SilenceBook) -> None:
    with pytest.raises(NotFound) as missing:
        await book.create(body(id="no-such-silence"))
    assert missing.value.field == "id"


async def test_expiring_ends_a_silence_now_and_twice_is_refused(
    book: SilenceBook, bus: EventBus, clock: Clock
) -> None:
    made = await book.create(body())
    pending = await book.create(body(startsAt=iso(T0 + timedelta(hours=1))))
    changes: list[str] = []

    async def changed() -> None:
        changes.append("changed")

    book.on_change = changed
    clock.advance(minutes=20)
    expired = await book.expire({"silence_id": made["aggregate_id"], "by": "key:bob"})
    assert expired["version"] == 2 and changes == ["changed"]
    [_, event] = await history(bus, made["aggregate_id"])
    assert isinstance(event, SilenceExpired) and (event.by, event.time) == ("key:bob", clock())
    assert book.active(WEB, clock()) == []

    await book.expire({"silence_id": pending["aggregate_id"], "by": "key:bob"})
    never = book.get(pending["aggregate_id"])
    assert never is not None and never.starts_at == never.ends_at == clock()
    clock.advance(hours=1)
    assert book.active(WEB, clock()) == []  # a pending silence expired never starts

    with pytest.raises(InvalidTransition) as twice:
        await book.expire({"silence_id": made["aggregate_id"], "by": "key:bob"})
    assert twice.value.field == "silence_id" and "already expired" in twice.value.message
    with pytest.raises(NotFound):
        await book.expire({"silence_id": "nope", "by": "key:bob"})
    assert changes == ["changed", "changed"]


async def test_a_retried_request_makes_one_silence(
    book: SilenceBook, bus: EventBus, clock: Clock
) -> None:
    first = await book.create(body())
    clock.advance(seconds=30)
    assert await book.create(body()) == first
    keyed = await book.create(body(request_id="key-1", comment="other"))
    assert keyed["aggregate_id"] != first["aggregate_id"]
    assert await book.create(body(request_id="key-1", comment="other")) == keyed
    assert len(book.silences) == 2
    assert (await bus.js.stream_info("SILENCES")).state.messages == 2

    # the same body sent again after the retry window is a new request: a new silence
    clock.advance(minutes=15)
    later = await book.create(body())
    assert later["aggregate_id"] != first["aggregate_id"]
    assert await book.create(body()) == later
    assert len(book.silences) == 3


async def test_a_clash_on_the_subject_reloads_and_decides_again(
    book: SilenceBook, bus: EventBus, clock: Clock
) -> None:
    made = await book.create(body())
    silence_id = made["aggregate_id"]
    # another writer changed the silence behind this book's back
    other = SilenceBook(lambda: bus, clock)
    await other.load()
    await other.create(body(id=silence_id, comment="from elsewhere"))
    changed = await book.create(body(id=silence_id, comment="mine"))
    assert changed["version"] == 3
    comments = [e.comment for e in await history(bus, silence_id) if hasattr(e, "comment")]
    assert comments == ["deploy", "from elsewhere", "mine"]


async def test_the_book_rebuilt_from_the_log_equals_the_live_one(
    book: SilenceBook, bus: EventBus, clock: Clock
) -> None:
    a = await book.create(body())
    b = await book.create(body(matchers=[{"name": "job", "value": "api"}]))
    clock.advance(minutes=1)
    await book.create(
        body(id=a["aggregate_id"], comment="longer", endsAt=iso(T0 + timedelta(hours=9)))
    )
    await book.expire({"silence_id": b["aggregate_id"], "by": "key:bob"})
    await book.create(body(id=a["aggregate_id"], matchers=[{"name": "host", "value": "web-9"}]))
    rebuilt = SilenceBook(lambda: bus, clock)
    await rebuilt.load()
    assert rebuilt.silences == book.silences
    assert rebuilt.active({"host": "web-9"}, clock()) == book.active({"host": "web-9"}, clock())
    assert rebuilt.next_change(clock()) == book.next_change(clock())


async def test_the_alerts_service_answers_the_silence_commands(
    bus: EventBus, settings: Settings, start_service: RuntimeFactory
) -> None:
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    await start_service(build(settings, VigilConfig(), clock=clock))
    now = clock()
    made = await bus.request(
        CREATE_SILENCE, body(startsAt=iso(now), endsAt=iso(now + timedelta(hours=1)))
    )
    assert made["stream"] == "SILENCES" and made["seq"] >= 1
    with pytest.raises(InvalidInput) as refused:
        await bus.request(
            CREATE_SILENCE,
            body(matchers=[{"name": "host", "value": "(", "isRegex": True}], endsAt=iso(now)),
        )
    assert refused.value.field == "matchers[0].value"
    expired = await bus.request(EXPIRE_SILENCE, {"silence_id": made["aggregate_id"], "by": "x"})
    assert expired["version"] == 2
    with pytest.raises(InvalidTransition):
        await bus.request(EXPIRE_SILENCE, {"silence_id": made["aggregate_id"], "by": "x"})
