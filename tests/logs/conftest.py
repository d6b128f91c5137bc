"""Log store fixtures: a store on each SQL backend, and batches of lines to put in it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from services.gateway.logs.batch import parse_log_batch
from services.metrics.logs.store import LogStore
from shared.db import create_engine
from shared.events import LogsIngested
from shared.settings import Settings


@pytest.fixture
async def log_store(database_url: str) -> AsyncIterator[LogStore]:
    store = LogStore(create_engine(database_url), Settings())
    await store.open()
    yield store
    await store.close()


def batch(entries: list[dict[str, Any]], received_at: float | None = None) -> LogsIngested:
    """A batch as the gateway validates it and the consumer decodes it from the stream."""
    now = time.time() if received_at is None else received_at
    validated = parse_log_batch(orjson.dumps(entries), now)
    event = LogsIngested.of_validated(validated, aggregate_id="test", received_at=now)
    decoded = LogsIngested.model_validate_json(event.encode())
    return decoded


def lines(*messages: str, **common: Any) -> list[dict[str, Any]]:
    return [{"message": message, **common} for message in messages]
