"""Stream limits against a real nats-server: configured limits reach the server, a full
event-sourced stream refuses writes loudly and keeps its history, METRICS drops its oldest."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from pydantic import ByteSize

from shared import subjects
from shared.bus import EventBus, connect
from shared.errors import StreamFull
from shared.events import IncidentOpened, Sample, SamplesIngested
from shared.natsserver import free_port, nats_server_binary
from shared.settings import GIB, Settings
from shared.streams import ALL_STREAMS, RUNS_KEPT_PER_CHECK, ensure_streams, stream_limits

HOUR = 3600.0
DAY = 24 * HOUR


def opened(incident_id: str) -> IncidentOpened:
    return IncidentOpened(aggregate_id=incident_id, title="x" * 200, severity="critical")


def samples_batch(n: int) -> SamplesIngested:
    sample = Sample(name="cpu", value=float(n), timestamp=None, labels={"host": "a" * 200})
    return SamplesIngested(aggregate_id="api", samples=[sample], received_at=time.time())


async def test_the_default_limits_reach_the_server(bus: EventBus) -> None:
    limits = stream_limits(Settings())
    for spec in ALL_STREAMS:
        config = (await bus.js.stream_info(spec.name)).config
        assert (config.max_bytes, config.max_age) == (
            limits[spec.name].max_bytes,
            limits[spec.name].max_age_s,
        ), spec.name
        assert config.max_bytes > 0
    policies = {s.name: (await bus.js.stream_info(s.name)).config.discard for s in ALL_STREAMS}
    assert policies == {
        "METRICS": DiscardPolicy.OLD,
        "LOGS": DiscardPolicy.OLD,
        "ALERTS": DiscardPolicy.NEW,
        "INCIDENTS": DiscardPolicy.NEW,
        "SYNTHETIC": DiscardPolicy.NEW,
        "NOTIFICATIONS": DiscardPolicy.NEW,
        "PAGING": DiscardPolicy.NEW,
        "SILENCES": DiscardPolicy.NEW,
        "DEADLETTERS": DiscardPolicy.OLD,
        "CONFIG": DiscardPolicy.NEW,
        "WATCHDOG": DiscardPolicy.OLD,
        "IDENTITY": DiscardPolicy.NEW,
        "AUDIT": DiscardPolicy.OLD,
    }
    metrics = (await bus.js.stream_info("METRICS")).config
    assert (metrics.max_age, metrics.max_bytes) == (6 * 3600, 10 * GIB)
    synthetic = (await bus.js.stream_info("SYNTHETIC")).config
    assert synthetic.max_msgs_per_subject == RUNS_KEPT_PER_CHECK


async def test_configured_limits_replace_those_of_existing_streams(bus: EventBus) -> None:
    settings = Settings(
        stream_metrics_max_bytes=ByteSize(3 * GIB),
        stream_metrics_max_age_s=2 * DAY,
        stream_alerts_max_bytes=ByteSize(700_000_000),
        stream_notifications_max_age_s=90 * DAY,
        stream_deadletters_max_bytes=ByteSize(123_456_789),
    )
    await ensure_streams(bus.js, settings)
    configs = {s.name: (await bus.js.stream_info(s.name)).config for s in ALL_STREAMS}
    assert (configs["METRICS"].max_bytes, configs["METRICS"].max_age) == (3 * GIB, 2 * DAY)
    assert configs["ALERTS"].max_bytes == 700_000_000
    assert configs["NOTIFICATIONS"].max_age == 90 * DAY
    assert configs["DEADLETTERS"].max_bytes == 123_456_789


async def test_a_stream_made_before_limits_existed_gets_them(bus: EventBus) -> None:
    await bus.js.delete_stream("ALERTS")
    await bus.js.add_stream(
        StreamConfig(
            name="ALERTS",
            subjects=[f"{subjects.ALERT_EVENTS}.>"],
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_bytes=-1,
        )
    )
    await ensure_streams(bus.js, Settings())
    config = (await bus.js.stream_info("ALERTS")).config
    assert (config.discard, config.max_bytes) == (DiscardPolicy.NEW, 10 * GIB)


def test_byte_limits_are_read_with_units_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VIGIL_STREAM_INCIDENTS_MAX_BYTES", "2GiB")
    monkeypatch.setenv("VIGIL_STREAM_METRICS_MAX_AGE_S", "86400")
    limits = stream_limits(Settings())
    assert limits["INCIDENTS"].max_bytes == 2 * GIB
    assert limits["METRICS"].max_age_s == DAY


async def test_a_full_event_sourced_stream_refuses_writes_and_keeps_its_history(
    bus: EventBus,
) -> None:
    await ensure_streams(bus.js, Settings(stream_incidents_max_bytes=ByteSize(4000)))
    stored: list[str] = []
    with pytest.raises(StreamFull) as refused:
        for n in range(100):
            await bus.publish(subjects.incident(f"inc-{n}"), opened(f"inc-{n}"))
            stored.append(f"inc-{n}")
    assert 0 < len(stored) < 100
    assert refused.value.message == (
        "stream INCIDENTS is full: it reached its byte limit (VIGIL_STREAM_INCIDENTS_MAX_BYTES) "
        "and refuses new events rather than drop history; raise the limit"
    )
    assert [r.event.aggregate_id async for r in bus.replay("INCIDENTS")] == stored

    # a lower limit than what is stored removes nothing; a higher one lets writes in again
    await ensure_streams(bus.js, Settings(stream_incidents_max_bytes=ByteSize(1000)))
    assert [r.event.aggregate_id async for r in bus.replay("INCIDENTS")] == stored
    await ensure_streams(bus.js, Settings(stream_incidents_max_bytes=ByteSize(100_000)))
    await bus.publish(subjects.incident("inc-late"), opened("inc-late"))
    assert (await bus.js.stream_info("INCIDENTS")).state.messages == len(stored) + 1


async def test_a_full_metrics_stream_drops_its_oldest_batches_and_keeps_accepting(
    bus: EventBus,
) -> None:
    await ensure_streams(bus.js, Settings(stream_metrics_max_bytes=ByteSize(6000)))
    last = 0
    for n in range(50):
        last = await bus.publish(subjects.samples("api"), samples_batch(n))
    state = (await bus.js.stream_info("METRICS")).state
    assert state.last_seq == last == 50
    assert 0 < state.messages < 50
    assert state.bytes <= 6000
    assert state.first_seq == 50 - state.messages + 1


@pytest.fixture
def small_store_nats(tmp_path: Path) -> Iterator[str]:
    """A nats-server that may keep only 10 MB in all, as an operator's own server might."""
    port = free_port()
    config = tmp_path / "small.conf"
    config.write_text(
        f"host: 127.0.0.1\nport: {port}\n"
        f'jetstream {{\n  store_dir: "{tmp_path / "js"}"\n  max_file_store: 10MB\n}}\n'
    )
    process = subprocess.Popen(
        [nats_server_binary(), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "nats-server did not listen"
            time.sleep(0.02)
    yield f"nats://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


async def test_limits_the_server_cannot_reserve_stop_the_start_with_the_setting_named(
    small_store_nats: str,
) -> None:
    nc = await connect(small_store_nats, "test")
    try:
        with pytest.raises(RuntimeError) as failed:
            await ensure_streams(EventBus(nc).js, Settings())
        assert str(failed.value).startswith(
            "stream METRICS: the NATS server cannot reserve 10737418240 bytes for it"
        )
        assert "lower VIGIL_STREAM_METRICS_MAX_BYTES" in str(failed.value)
    finally:
        await nc.close()
