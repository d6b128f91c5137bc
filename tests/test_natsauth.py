"""NATS credentials and permissions against a real nats-server configured from the table."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig

from shared import natsauth, subjects
from shared.bus import EventBus, log_session, settle
from shared.events import SamplesIngested, new_id
from shared.natsauth import NatsCredentials, client_credentials, embedded_authorization
from shared.natsserver import EmbeddedNats
from shared.settings import Settings
from shared.streams import ALERTS, ensure_streams
from tests.waiting import eventually


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """An embedded server that requires the data dir's generated credentials."""
    server = EmbeddedNats(tmp_path / "nats", authorization=embedded_authorization(tmp_path)).start()
    yield server
    server.stop()


class Session:
    """A client logged in as one user; collects the server's complaints."""

    def __init__(self, nc: Client, errors: list[str]):
        self.nc = nc
        self.errors = errors
        self.bus = EventBus(nc)

    def violations(self) -> list[str]:
        return [e for e in self.errors if "violation" in e.lower()]


async def login(server: EmbeddedNats, data_dir: Path, user: str) -> Session:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    credentials = client_credentials(data_dir, user)
    assert credentials is not None
    nc = await nats.connect(
        server.url,
        name=f"test-{user}",
        allow_reconnect=False,
        error_cb=on_error,
        **credentials.connect_options(),
    )
    return Session(nc, errors)


@pytest.fixture
async def sessions(secured: EmbeddedNats, tmp_path: Path) -> AsyncIterator[dict[str, Session]]:
    """Every user logged in; the streams declared by the CLI user first, as ``vigil up`` does."""
    opened = {user: await login(secured, tmp_path, user) for user in natsauth.USERS}
    await ensure_streams(opened["cli"].bus.js, Settings())
    yield opened
    for session in opened.values():
        await session.nc.close()


def batch(source: str) -> SamplesIngested:
    return SamplesIngested(
        id=new_id(),
        aggregate_id=source,
        samples=[{"name": "checkout_latency_ms", "value": 5000.0, "labels": {}}],
        received_at=time.time(),
    )


async def stored(session: Session, stream: str) -> int:
    info = await session.bus.js.stream_info(stream)
    return int(info.state.messages)


async def refused_publish(session: Session, subject: str, payload: Any) -> None:
    """A JetStream publish the server drops: no ack comes, and it says why."""
    js = session.nc.jetstream(timeout=0.4)
    data = payload.encode() if hasattr(payload, "encode") else payload
    with pytest.raises((NatsTimeout, TimeoutError)):
        await js.publish(subject, data, timeout=0.4)
    assert any(subject in v for v in session.violations()), session.errors


async def unanswered(*requests: Awaitable[Any]) -> None:
    """Each request gets no answer: the server dropped it (and said so to the client)."""
    outcomes = await asyncio.gather(
        *(asyncio.wait_for(request, 0.5) for request in requests), return_exceptions=True
    )
    for outcome in outcomes:
        assert isinstance(outcome, (NatsTimeout, TimeoutError)), outcome


# --- who may connect ---------------------------------------------------------------


async def test_a_client_without_credentials_is_refused(secured: EmbeddedNats) -> None:
    with pytest.raises(NatsError, match=r"[Aa]uthorization"):
        await nats.connect(secured.url, allow_reconnect=False, max_reconnect_attempts=0)


async def test_a_wrong_password_is_refused(secured: EmbeddedNats) -> None:
    with pytest.raises(NatsError, match=r"[Aa]uthorization"):
        await nats.connect(
            secured.url,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            **NatsCredentials("alerts", "not-the-password").connect_options(),
        )


async def test_every_user_logs_in_with_its_generated_password(
    sessions: dict[str, Session],
) -> None:
    for user, session in sessions.items():
        assert session.nc.is_connected, user


# --- publishing: only one's own events -----------------------------------------------


async def test_each_service_appends_its_own_events(sessions: dict[str, Session]) -> None:
    own = {
        "gateway": subjects.samples("api"),
        "alerts": subjects.alert("a1"),
        "incidents": subjects.incident("i1"),
        "synthetic": subjects.samples("synthetic"),
        "metrics": subjects.samples("slo"),  # SLO burn rates
        "notifier": subjects.notification("d1"),
        "agent": subjects.samples("agent-host1"),
    }
    for user, subject in own.items():
        ack = await sessions[user].bus.js.publish(subject, batch(user).encode(), timeout=5)
        assert ack.seq > 0, user
        assert sessions[user].violations() == [], (user, sessions[user].errors)


async def test_a_service_cannot_forge_a_sample_batch(sessions: dict[str, Session]) -> None:
    before = await stored(sessions["cli"], "METRICS")
    await refused_publish(sessions["synthetic"], subjects.samples("api"), batch("api"))
    await refused_publish(sessions["notifier"], subjects.samples("evil"), batch("evil"))
    await refused_publish(sessions["alerts"], subjects.samples("vigil"), batch("vigil"))
    # the agent speaks for hosts, never for the gateway, the watchdog or the prober
    await refused_publish(sessions["agent"], subjects.samples("vigil"), batch("vigil"))
    await refused_publish(sessions["agent"], subjects.samples("slo"), batch("slo"))
    await refused_publish(sessions["metrics"], subjects.samples("api"), batch("api"))
    assert await stored(sessions["cli"], "METRICS") == before


async def test_a_service_cannot_append_another_services_events(
    sessions: dict[str, Session],
) -> None:
    await refused_publish(sessions["gateway"], subjects.alert("forged"), b"{}")
    await refused_publish(sessions["notifier"], subjects.incident("forged"), b"{}")
    await refused_publish(sessions["metrics"], subjects.check_definition("forged"), b"{}")
    await refused_publish(sessions["synthetic"], "identity.keys.forged", b"{}")
    await refused_publish(sessions["alerts"], "config.channels.forged", b"{}")
    await refused_publish(sessions["incidents"], subjects.dead_letter("notifier-alerts"), b"{}")
    assert await stored(sessions["cli"], "ALERTS") == 0
    assert await stored(sessions["cli"], "INCIDENTS") == 0


async def test_commands_go_only_to_their_owner(sessions: dict[str, Session]) -> None:
    """The gateway sends commands, the owner answers; nobody else may send or answer."""
    alerts = sessions["alerts"]
    served = await alerts.bus.serve(
        f"{subjects.ALERT_COMMANDS}.acknowledge", lambda body: _echo(body), queue="vigil-alerts"
    )
    await settle(alerts.nc)  # the subscription is live on the server before the request
    assert await sessions["gateway"].bus.request(
        f"{subjects.ALERT_COMMANDS}.acknowledge", {"id": "a1"}, timeout=5
    ) == {"id": "a1"}
    # a service that does not own the command may not listen in on it or send it
    notifier = sessions["notifier"]
    await notifier.nc.subscribe(f"{subjects.ALERT_COMMANDS}.acknowledge")
    await notifier.nc.publish(f"{subjects.ALERT_COMMANDS}.resolve", b"{}")
    await notifier.nc.flush()
    await asyncio.sleep(0.2)
    assert len(notifier.violations()) == 2, notifier.errors
    await served.unsubscribe()


async def _echo(body: dict[str, Any]) -> dict[str, Any]:
    return body


async def test_no_one_listens_to_another_users_inbox(sessions: dict[str, Session]) -> None:
    synthetic = sessions["synthetic"]
    await synthetic.nc.subscribe("_INBOX.gateway.>")
    await synthetic.nc.subscribe("_INBOX.>")
    await synthetic.nc.subscribe(">")
    await synthetic.nc.flush()
    await asyncio.sleep(0.2)
    assert len(synthetic.violations()) == 3, synthetic.errors


# --- the log's history: nobody but the CLI may destroy it -------------------------------


async def test_no_service_may_purge_delete_or_shrink_a_stream(
    sessions: dict[str, Session],
) -> None:
    cli = sessions["cli"]
    await cli.bus.js.publish(subjects.alert("kept"), b"{}")
    for user in ("gateway", "alerts", "incidents", "synthetic", "notifier", "metrics", "agent"):
        js = sessions[user].nc.jetstream(timeout=0.4)
        shrunk = (await cli.bus.js.stream_info(ALERTS.name)).config
        shrunk.max_age = 1.0  # "keep one second" would drop the whole history
        await unanswered(
            js.purge_stream(ALERTS.name),
            js.delete_stream(ALERTS.name),
            js.delete_msg(ALERTS.name, 1),
            js.update_stream(shrunk),
        )
        assert len(sessions[user].violations()) == 4, (user, sessions[user].errors)
    assert await stored(cli, ALERTS.name) == 1
    assert (await cli.bus.js.stream_info(ALERTS.name)).config.max_age == 0


async def test_the_cli_user_may_purge(sessions: dict[str, Session]) -> None:
    cli = sessions["cli"]
    await cli.bus.js.publish(subjects.alert("gone"), b"{}")
    assert await cli.bus.js.purge_stream(ALERTS.name)
    assert await stored(cli, ALERTS.name) == 0


async def test_a_service_reads_only_the_streams_it_consumes(
    sessions: dict[str, Session],
) -> None:
    """Identity events hold key hashes: only the gateway reads them."""
    incidents = sessions["incidents"]
    js = incidents.nc.jetstream(timeout=0.4)
    await unanswered(
        js.add_consumer("METRICS", ConsumerConfig(durable_name="peek")),
        js.add_consumer("IDENTITY", ConsumerConfig()),
        js.get_msg("NOTIFICATIONS", seq=1, direct=True),
    )
    assert len(incidents.violations()) == 3, incidents.errors
    # its own stream it reads
    ack = await incidents.bus.js.publish(subjects.incident("i9"), b"{}")
    got = await incidents.bus.js.get_msg(
        "INCIDENTS", seq=1, subject=subjects.incident("i9"), next=True, direct=True
    )
    assert got.seq == ack.seq


async def test_services_declare_streams_without_the_right_to_change_them(
    sessions: dict[str, Session],
) -> None:
    """Every service declares the streams at start; unchanged, that sends no update."""
    for user in ("gateway", "metrics", "alerts", "incidents", "synthetic", "notifier"):
        await ensure_streams(sessions[user].bus.js, Settings())
        assert sessions[user].violations() == [], (user, sessions[user].errors)


# --- credentials at rest ---------------------------------------------------------------


def test_passwords_are_generated_once_private_and_kept(tmp_path: Path) -> None:
    first = natsauth.ensure_passwords(tmp_path)
    path = natsauth.credentials_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(first) == set(natsauth.USERS)
    assert len(set(first.values())) == len(first), "every user its own password"
    assert all(len(password) >= 40 for password in first.values())
    assert natsauth.ensure_passwords(tmp_path) == first
    # a user added by an upgrade gets a password; the others keep theirs
    stored = json.loads(path.read_text())
    del stored["users"]["agent"]
    path.write_text(json.dumps(stored))
    again = natsauth.ensure_passwords(tmp_path)
    assert {u: p for u, p in again.items() if u != "agent"} == {
        u: p for u, p in first.items() if u != "agent"
    }
    assert again["agent"] != first["agent"]


def test_the_server_config_holding_passwords_is_private(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats", authorization=embedded_authorization(tmp_path))
    config = server.write_config()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    text = config.read_text()
    for password in natsauth.read_passwords(tmp_path).values():  # type: ignore[union-attr]
        assert password in text
    assert "authorization" not in EmbeddedNats(tmp_path / "open").write_config().read_text()


def test_credentials_come_from_settings_or_the_data_dir(tmp_path: Path) -> None:
    assert natsauth.credentials_for(Settings(data_dir=tmp_path), "alerts") is None
    passwords = natsauth.ensure_passwords(tmp_path)
    found = natsauth.credentials_for(Settings(data_dir=tmp_path), "alerts")
    assert found == NatsCredentials("alerts", passwords["alerts"])
    named = natsauth.credentials_for(Settings(data_dir=tmp_path, nats_user="notifier"), "x")
    assert named == NatsCredentials("notifier", passwords["notifier"])
    given = Settings(data_dir=tmp_path, nats_user="gateway", nats_password="pw")  # type: ignore[arg-type]
    assert natsauth.credentials_for(given, "x") == NatsCredentials("gateway", "pw")
    assert "pw" not in repr(natsauth.credentials_for(given, "x"))
    env = {"VIGIL_DATA_DIR": str(tmp_path)}
    assert natsauth.env_credentials(env, "agent") == NatsCredentials("agent", passwords["agent"])
    with pytest.raises(LookupError, match="stranger"):
        natsauth.client_credentials(tmp_path, "stranger")


async def test_a_runtime_and_a_log_session_log_in_by_themselves(
    secured: EmbeddedNats, tmp_path: Path
) -> None:
    """What services and tools do: find their user's password in the data dir."""
    settings = Settings(nats_url=secured.url, data_dir=tmp_path)
    async with log_session(settings, "test") as bus:  # the CLI user by default
        await bus.js.publish(subjects.alert("from-cli"), b"{}")
    from shared.runtime import ServiceRuntime

    runtime = ServiceRuntime("incidents", settings)
    await runtime.start()
    try:
        assert runtime.bus.nc.is_connected
        seq = await runtime.bus.publish(subjects.incident("i1"), batch("x"))
        assert seq > 0
    finally:
        await runtime.stop()


async def test_a_service_re_drives_its_own_dead_letters_when_the_gateway_asks(
    secured: EmbeddedNats, tmp_path: Path
) -> None:
    """The owner reads the message back, runs its handler and records the re-drive, all
    within its own grant; the gateway may ask, and nobody else's consumer is touched."""
    from shared.commands import RetryDeadLetter
    from shared.consumer import ConsumerSpec, Delivery, dead_letter_id
    from shared.events import Event, IncidentOpened
    from shared.runtime import ServiceRuntime
    from shared.streams import INCIDENTS

    settings = Settings(nats_url=secured.url, data_dir=tmp_path)
    spec = ConsumerSpec(
        durable="notifier-incidents",
        stream=INCIDENTS,
        filter_subject=f"{subjects.INCIDENT_EVENTS}.>",
        ordered=False,
        max_attempts=1,
    )
    seen: list[bool] = []

    async def handler(event: Event, delivery: Delivery) -> None:
        seen.append(delivery.redrive)
        if not delivery.redrive:
            raise RuntimeError("first time fails")

    runtime = ServiceRuntime("notifier", settings)
    runtime.consume(spec, handler)
    gateway = await login(secured, tmp_path, "gateway")
    incidents = await login(secured, tmp_path, "incidents")
    try:
        await runtime.start()
        opened = IncidentOpened(aggregate_id="i1", title="t", severity="critical")
        seq = await incidents.bus.publish(subjects.incident("i1"), opened)
        await eventually(lambda: seen == [False], what="the first, failing delivery")
        command = RetryDeadLetter(
            dead_letter_id=dead_letter_id(spec, INCIDENTS.name, seq),
            consumer=spec.durable,
            stream=INCIDENTS.name,
            stream_seq=seq,
            subject=subjects.incident("i1"),
            deliveries=1,
            payload="{}",
            by="key:ops",
        )
        result = await gateway.bus.request(
            subjects.retry_dead_letter("notifier"), command.model_dump(), timeout=10
        )
        assert (result["outcome"], result["source"], result["attempt"]) == (
            "succeeded",
            "stream",
            1,
        )
        assert seen == [False, True]
        assert runtime.bus.nc.is_connected and gateway.violations() == []
    finally:
        await runtime.stop()
        await gateway.nc.close()
        await incidents.nc.close()
