"""Dead letters re-driven over HTTP: the gateway asks the service running the consumer,
which hands the message to the same handler again, marked as a re-drive."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.gateway.app import Gateway
from shared import subjects
from shared.bus import EventBus
from shared.consumer import ConsumerSpec, Delivery, dead_letter_id
from shared.events import Event, IncidentOpened, MessageDeadLettered
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.streams import ALERTS
from tests.conftest import RuntimeFactory
from tests.gateway.identities import ADMIN, actor_of, headers_for
from tests.waiting import eventually

DEAD_LETTERS = "/api/monitoring/deadletters"
# a registered durable of the incidents service (shared.durables), run here by a stand-in
CONSUMER = ConsumerSpec(
    durable="incidents-from-alerts",
    stream=ALERTS,
    filter_subject=f"{subjects.ALERT_EVENTS}.>",
    max_attempts=1,  # dead-lettered at the first failure
)


class Flaky:
    """A handler that fails until told to work; remembers every delivery it was given."""

    def __init__(self) -> None:
        self.working = False
        self.seen: list[tuple[str, Delivery]] = []

    async def __call__(self, event: Event, delivery: Delivery) -> None:
        self.seen.append((event.aggregate_id, delivery))
        if not self.working:
            raise RuntimeError("downstream table missing")


@pytest.fixture
async def flaky(gateway_settings: Settings, start_service: RuntimeFactory) -> Flaky:
    handler = Flaky()
    owner = ServiceRuntime("incidents", gateway_settings)
    owner.consume(CONSUMER, handler)
    await start_service(owner)
    return handler


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


async def dead_letter_listed(http: httpx.AsyncClient, consumer: str) -> dict[str, object]:
    async def listed() -> list[dict[str, object]]:
        page = await http.get(DEAD_LETTERS, params={"consumer": consumer}, headers=ADMIN)
        return list(page.json()["items"])

    items = await eventually(listed, what=f"a dead letter of {consumer}")
    return items[0]


async def test_a_responder_re_drives_a_dead_letter_to_its_consumer(
    http: httpx.AsyncClient, bus: EventBus, flaky: Flaky, gateway: Gateway
) -> None:
    await bus.publish(
        subjects.alert("a-1"),
        IncidentOpened(aggregate_id="a-1", title="stand-in event", severity="critical"),
    )
    letter = await dead_letter_listed(http, CONSUMER.durable)
    assert (letter["retries"], letter["outcome"], letter["retried_at"]) == (0, None, None)
    retry = f"{DEAD_LETTERS}/{letter['id']}/retry"
    viewer = await headers_for(gateway.app, http, "viewer")
    responder = await headers_for(gateway.app, http, "responder")
    assert (await http.post(retry, headers=viewer)).status_code == 403

    # still failing: 502 naming the reason, the attempt recorded
    failed = await http.post(retry, headers=responder)
    assert failed.status_code == 502, failed.text
    assert failed.headers["content-type"] == "application/problem+json"
    assert "downstream table missing" in failed.json()["detail"]
    shown = await eventually(
        lambda: one(http, str(letter["id"])), what="the failed re-drive in the list"
    )
    assert (shown["retries"], shown["outcome"]) == (1, "failed")
    assert "downstream table missing" in str(shown["retry_error"])

    flaky.working = True
    done = await http.post(retry, headers=responder)
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["id"], body["retries"], body["outcome"]) == (letter["id"], 2, "succeeded")
    assert body["retried_by"] == actor_of("responder")
    assert body["retried_at"] is not None and body["retry_error"] == ""
    # the same message, from its stream, marked as a re-drive, past its first delivery
    first, *redriven = flaky.seen
    assert [aggregate for aggregate, _ in flaky.seen] == ["a-1"] * 3
    assert not first[1].redrive
    assert all(d.redrive and d.stream_seq == first[1].stream_seq for _, d in redriven)
    assert all(d.deliveries == 2 for _, d in redriven)

    # the audit log holds both requests
    async def audited() -> list[object]:
        page = await http.get(
            "/api/monitoring/audit",
            params={"action": "POST /api/monitoring/deadletters/{dead_letter_id}/retry"},
            headers=ADMIN,
        )
        items = page.json()["items"]
        return items if len(items) >= 2 else []

    await eventually(audited, what="the re-drives in the audit log")


async def one(http: httpx.AsyncClient, dead_letter: str) -> dict[str, object] | None:
    shown = (await http.get(f"{DEAD_LETTERS}/{dead_letter}", headers=ADMIN)).json()
    return shown if shown["retries"] else None


async def test_the_dead_letters_copy_is_used_once_the_stream_has_let_the_message_go(
    http: httpx.AsyncClient, bus: EventBus, flaky: Flaky
) -> None:
    flaky.working = True
    original = IncidentOpened(aggregate_id="gone-1", title="kept in the letter", severity="warning")
    seq = 9_999  # never written: as if the stream's limits had removed it
    letter = MessageDeadLettered(
        id=dead_letter_id(CONSUMER, ALERTS.name, seq),
        aggregate_id=CONSUMER.durable,
        consumer=CONSUMER.durable,
        stream=ALERTS.name,
        stream_seq=seq,
        subject=subjects.alert("gone-1"),
        deliveries=8,
        error="gave up",
        payload=original.encode().decode(),
    )
    await bus.publish(subjects.dead_letter(CONSUMER.durable), letter)
    await dead_letter_listed(http, CONSUMER.durable)
    done = await http.post(f"{DEAD_LETTERS}/{letter.id}/retry", headers=ADMIN)
    assert (done.status_code, done.json()["outcome"]) == (200, "succeeded"), done.text
    [(aggregate, delivery)] = flaky.seen
    assert (aggregate, delivery.stream_seq, delivery.redrive) == ("gone-1", seq, True)


async def test_unknown_dead_letters_and_consumers_nobody_re_drives_are_refused(
    http: httpx.AsyncClient, bus: EventBus, gateway: Gateway
) -> None:
    missing = await http.post(f"{DEAD_LETTERS}/nope/retry", headers=ADMIN)
    assert (missing.status_code, missing.json()["field"]) == (404, "id")
    for consumer in ("left-by-an-older-version", "gateway-alerts"):
        letter = MessageDeadLettered(
            aggregate_id=consumer,
            consumer=consumer,
            stream=ALERTS.name,
            stream_seq=1,
            subject=subjects.alert("x"),
            deliveries=1,
            error="e",
            payload="{}",
        )
        await bus.publish(subjects.dead_letter(consumer), letter)
        await dead_letter_listed(http, consumer)
        refused = await http.post(f"{DEAD_LETTERS}/{letter.id}/retry", headers=ADMIN)
        assert refused.status_code == 409, refused.text
        assert refused.json()["field"] == "consumer"
    # a read model says how to mend it instead
    assert "vigil rebuild gateway" in refused.json()["detail"]
