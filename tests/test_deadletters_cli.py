"""``vigil deadletters list|retry`` against a real nats-server and a running consumer."""

from __future__ import annotations

import pytest

from services.deadletters_cli import CliError, list_letters, retry
from shared import subjects
from shared.bus import EventBus
from shared.consumer import ConsumerSpec, Delivery
from shared.events import Event, IncidentOpened
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.streams import INCIDENTS
from tests.conftest import RuntimeFactory
from tests.waiting import eventually

# a registered durable of the notifier (shared.durables), run here by a stand-in
CONSUMER = ConsumerSpec(
    durable="notifier-incidents",
    stream=INCIDENTS,
    filter_subject=f"{subjects.INCIDENT_EVENTS}.>",
    ordered=False,
    max_attempts=1,
)


async def test_every_dead_letter_of_a_consumer_is_re_driven_and_listed(
    settings: Settings, bus: EventBus, start_service: RuntimeFactory
) -> None:
    handled: list[tuple[str, bool]] = []
    fixed = False

    async def handler(event: Event, delivery: Delivery) -> None:
        handled.append((event.aggregate_id, delivery.redrive))
        if not fixed:
            raise RuntimeError("receiver gone")

    owner = ServiceRuntime("notifier", settings)
    owner.consume(CONSUMER, handler)
    await start_service(owner)
    for name in ("i-1", "i-2"):
        opened = IncidentOpened(aggregate_id=name, title=name, severity="critical")
        await bus.publish(subjects.incident(name), opened)

    async def listed() -> list[str]:
        lines = await list_letters(settings, CONSUMER.durable)
        return lines if len(lines) == 2 else []

    before = await eventually(listed, what="two dead letters")
    assert all("never re-driven" in line and "receiver gone" in line for line in before)

    fixed = True
    lines, ok = await retry(settings, [], CONSUMER.durable)
    assert ok and len(lines) == 2, lines
    assert all(": succeeded (attempt 1, from the stream)" in line for line in lines)
    assert sorted(handled[2:]) == [("i-1", True), ("i-2", True)]
    after = await list_letters(settings, CONSUMER.durable)
    assert all("re-driven 1x, last succeeded by cli:" in line for line in after)
    # those done are not picked again by --all-for-consumer; an id still is
    assert await retry(settings, [], CONSUMER.durable) == (["nothing to re-drive"], True)
    letter = after[0].split()[0]
    lines, ok = await retry(settings, [letter], None)
    assert ok and lines == [f"{letter}: succeeded (attempt 2, from the stream)"]

    with pytest.raises(CliError, match="no dead letter nope"):
        await retry(settings, ["nope"], None)
    with pytest.raises(CliError, match="NATS_URL"):
        await retry(settings.model_copy(update={"nats_url": None}), [letter], None)
