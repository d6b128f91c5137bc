"""The AsyncAPI document in docs/ is the one the code generates."""

from __future__ import annotations

from pathlib import Path

import orjson

from shared.asyncapi import build_asyncapi
from shared.events import Event

DOC = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"


def test_committed_document_matches_the_code() -> None:
    assert orjson.loads(DOC.read_bytes()) == orjson.loads(orjson.dumps(build_asyncapi())), (
        "docs/asyncapi.json is stale: run `vigil asyncapi`"
    )


def test_every_concrete_event_is_documented() -> None:
    documented = set(build_asyncapi()["components"]["messages"])
    abstract = {"AlertEvent", "EscalationEvent", "NotificationOutcome", "SilenceEvent"}
    concrete = {name for name in Event.registry if name not in abstract}
    assert concrete <= documented
