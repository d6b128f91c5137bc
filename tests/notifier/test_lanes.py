"""A channel's lane: fast path, per-subject order, grouping, rate limit digests, retries."""

from __future__ import annotations

import asyncio
import time

from services.notifier import lanes
from services.notifier.domain import Notification
from services.notifier.lanes import Lane, Pending, Sent


def item(n: int, subject: str = "", group: str = "", interval_s: float = 0.0) -> Pending:
    subject = subject or f"s{n}"
    return Pending(
        delivery_id=f"d{n}",
        subject=subject,
        group=group or subject,
        group_wait_s=0.0,
        group_interval_s=interval_s,
        notification=Notification(f"d{n}", f"e{n}", "AlertFired", {"n": n}),
    )


class Receiver:
    """Answers as scripted; records each message as the delivery ids it carried."""

    def __init__(self, *script: Sent):
        self.script = list(script)
        self.messages: list[tuple[float, list[str]]] = []
        self.gave_up: list[str] = []

    async def send(self, batch: list[Pending]) -> Sent:
        self.messages.append((time.monotonic(), [p.delivery_id for p in batch]))
        return self.script.pop(0) if self.script else Sent(ok=True)

    async def give_up(self, batch: list[Pending], error: str) -> None:
        self.gave_up.extend(p.delivery_id for p in batch)

    def lane(self, retry_for_s: float = 3600.0) -> Lane:
        lane = Lane("ops", self.send, self.give_up, retry_for_s)
        lane.start()
        return lane

    @property
    def carried(self) -> list[str]:
        return [d for _, batch in self.messages for d in batch]


async def settle(lane: Lane, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while lane.depth:
        assert time.monotonic() < deadline, f"{lane.depth} still waiting"
        await asyncio.sleep(0.01)


async def test_an_idle_lane_sends_at_once_on_the_fast_path() -> None:
    receiver = Receiver()
    lane = receiver.lane()
    try:
        started = time.monotonic()
        assert await lane.submit(item(1)) == "delivered"
        assert time.monotonic() - started < 0.1
        assert receiver.carried == ["d1"]
        assert await lane.submit(item(1)) == "delivered"  # a settled id is the caller's to skip
    finally:
        await lane.stop()


async def test_permanent_failure_answers_failed() -> None:
    receiver = Receiver(Sent(ok=False, permanent=True, error="HTTP 404"))
    lane = receiver.lane()
    try:
        assert await lane.submit(item(1)) == "failed"
        assert lane.depth == 0
    finally:
        await lane.stop()


async def test_a_later_event_never_overtakes_an_earlier_one_being_retried(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(lanes, "BACKOFF_FIRST_S", 0.2)
    receiver = Receiver(Sent(ok=False, error="HTTP 503"))
    lane = receiver.lane()
    try:
        assert await lane.submit(item(1, subject="alert-a")) == "queued"
        assert await lane.submit(item(2, subject="alert-a")) == "queued"
        assert await lane.submit(item(3, subject="alert-b")) == "queued"
        await settle(lane)
        # the failed one first; then, catching up, one message for every subject waiting,
        # and alert-a's later event after it, as a message of its own
        assert [batch for _, batch in receiver.messages] == [["d1"], ["d1", "d3"], ["d2"]]
        gap = receiver.messages[1][0] - receiver.messages[0][0]
        assert receiver.messages[2][0] >= receiver.messages[1][0]
        assert 0.15 <= gap < 1.0  # backoff with jitter
    finally:
        await lane.stop()


async def test_retry_after_is_honoured() -> None:
    receiver = Receiver(Sent(ok=False, error="HTTP 429", retry_after_s=0.6))
    lane = receiver.lane()
    try:
        assert await lane.submit(item(1)) == "queued"
        await settle(lane)
        assert receiver.messages[1][0] - receiver.messages[0][0] >= 0.55
    finally:
        await lane.stop()


async def test_a_group_sends_at_most_once_per_interval_and_merges_the_rest() -> None:
    receiver = Receiver()
    lane = receiver.lane()
    try:
        assert await lane.submit(item(1, group="g", interval_s=0.5)) == "delivered"
        for n in (2, 3, 4):
            assert await lane.submit(item(n, group="g", interval_s=0.5)) == "queued"
        # another group is not held back by this one's interval: it goes out at once
        assert await lane.submit(item(5, group="other")) == "delivered"
        await settle(lane)
        batches = [batch for _, batch in receiver.messages]
        assert batches[0] == ["d1"]
        assert ["d2", "d3", "d4"] in batches and ["d5"] in batches
        group_message = next(at for at, batch in receiver.messages if batch[0] == "d2")
        assert group_message - receiver.messages[0][0] >= 0.45
    finally:
        await lane.stop()


async def test_a_storm_to_a_rate_limited_channel_becomes_a_few_digests_and_drops_nothing() -> None:
    receiver = Receiver()
    lane = receiver.lane()
    lane.configure(rate=1.0, burst=1, retry_for_s=3600.0)
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(lane.submit(item(n)) for n in range(1000)))
        assert results.count("delivered") + results.count("queued") == 1000
        await settle(lane)
        first_at = receiver.messages[0][0]
        assert first_at - started < 1.0
        assert sorted(receiver.carried) == sorted(f"d{n}" for n in range(1000))
        assert len(receiver.carried) == 1000  # each exactly once
        assert len(receiver.messages) <= 4  # 1 message a second: the rest went as digests
    finally:
        await lane.stop()


async def test_after_the_retry_window_it_gives_up_and_the_lane_moves_on(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(lanes, "BACKOFF_FIRST_S", 0.1)
    receiver = Receiver(*[Sent(ok=False, error="HTTP 503")] * 50)
    lane = receiver.lane(retry_for_s=0.5)
    try:
        assert await lane.submit(item(1)) == "queued"
        await settle(lane)
        assert receiver.gave_up == ["d1"]
        assert len(receiver.messages) >= 2
    finally:
        await lane.stop()


async def test_a_group_that_still_fires_is_sent_again_every_repeat_interval() -> None:
    receiver = Receiver()
    lane = receiver.lane()

    def event(n: int, status: str) -> Pending:
        return Pending(
            delivery_id=f"d{n}",
            subject="alert-a",
            group="g",
            group_wait_s=0.0,
            group_interval_s=0.0,
            repeat_interval_s=0.3,
            notification=Notification(
                f"d{n}", f"e{n}", "AlertFired", {"alert": {"status": status}}
            ),
        )

    try:
        assert await lane.submit(event(1, "firing")) == "delivered"
        await asyncio.sleep(0.75)
        repeats = [batch for _, batch in receiver.messages[1:]]
        assert len(repeats) == 2 and all(b[0] != "d1" for b in repeats)  # ids of their own
        assert len({b[0] for b in repeats}) == 2
        assert await lane.submit(event(2, "resolved")) == "delivered"
        sent = len(receiver.messages)
        await asyncio.sleep(0.5)
        assert len(receiver.messages) == sent  # resolved: no more repeats
    finally:
        await lane.stop()


async def test_different_subjects_go_side_by_side_and_one_subject_in_turn() -> None:
    on_the_wire: list[str] = []
    overlaps: list[int] = []

    class Slow(Receiver):
        async def send(self, batch: list[Pending]) -> Sent:
            on_the_wire.extend(p.subject for p in batch)
            overlaps.append(len(on_the_wire))
            await asyncio.sleep(0.2)
            for p in batch:
                on_the_wire.remove(p.subject)
            return await super().send(batch)

    receiver = Slow()
    lane = receiver.lane()
    try:
        started = time.monotonic()
        await asyncio.gather(*(lane.submit(item(n)) for n in range(8)))
        await settle(lane)
        assert time.monotonic() - started < 1.0  # not 8 x 0.2 s one after another
        assert max(overlaps) > 1
        same = [item(10 + n, subject="alert-a") for n in range(3)]
        await asyncio.gather(*(lane.submit(p) for p in same))
        await settle(lane)
        assert [b for _, b in receiver.messages[-3:]] == [["d10"], ["d11"], ["d12"]]
    finally:
        await lane.stop()


async def test_a_channel_that_cannot_show_a_digest_gets_every_event_on_its_own() -> None:
    receiver = Receiver()
    lane = receiver.lane()
    lane.configure(rate=50.0, burst=1, retry_for_s=3600.0, merges=False)
    try:
        await asyncio.gather(*(lane.submit(item(n, group="g")) for n in range(10)))
        await settle(lane)
        assert [b for _, b in receiver.messages] == [[f"d{n}"] for n in range(10)]
    finally:
        await lane.stop()
