"""Fixtures: a real nats-server per test (free port, own data dir), SQL backends, buses."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from shared.bus import EventBus, connect
from shared.natsserver import EmbeddedNats
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.streams import ensure_streams

# every gateway under test starts with this admin key (VIGIL_BOOTSTRAP_ADMIN_KEY)
TEST_ADMIN_KEY = "vigil-test-bootstrap-admin-key-0123456789abcdef"
ADMIN_HEADERS = {"Authorization": f"Bearer {TEST_ADMIN_KEY}"}

PG_ADMIN_URL = os.environ.get("VIGIL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_REQUIRED = os.environ.get("VIGIL_REQUIRE_POSTGRES") == "1"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats").start()
    yield server
    server.stop()


@pytest.fixture
async def bus(nats_server: EmbeddedNats) -> AsyncIterator[EventBus]:
    nc = await connect(nats_server.url, "test")
    event_bus = EventBus(nc)
    await ensure_streams(event_bus.js, Settings())
    yield event_bus
    await nc.close()


def _postgres_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    if not _postgres_available():
        if PG_REQUIRED:
            pytest.fail(f"PostgreSQL required but not reachable at {PG_ADMIN_URL}")
        pytest.skip("no PostgreSQL server answers")
    return PG_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A throw-away PostgreSQL database for one test."""
    name = f"vigil_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a store test once per SQL backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def settings(nats_server: EmbeddedNats, tmp_path: Path) -> Settings:
    """Settings for services under test: the test's own NATS, SQLite files in tmp_path."""
    return Settings(
        nats_url=nats_server.url,
        data_dir=tmp_path / "data",
        heartbeat_interval_s=0.2,
        bootstrap_admin_key=SecretStr(TEST_ADMIN_KEY),
    )


RuntimeFactory = Callable[[ServiceRuntime], Awaitable[ServiceRuntime]]


@pytest.fixture
async def start_service(nats_server: EmbeddedNats) -> AsyncIterator[RuntimeFactory]:
    """Start built runtimes; every one is stopped at teardown, before the server goes."""
    started: list[ServiceRuntime] = []

    async def start(runtime: ServiceRuntime) -> ServiceRuntime:
        await runtime.start()
        started.append(runtime)
        return runtime

    yield start
    for runtime in reversed(started):
        await runtime.stop()
