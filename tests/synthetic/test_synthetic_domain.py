"""Given definition events, when config or a command arrives, then these events."""

from __future__ import annotations

import pytest

from services.synthetic.domain import (
    CheckCatalog,
    CheckDefinition,
    ProbeOutcome,
    check_id_for,
    configure,
    reconcile,
    record_run,
    remove,
    samples_for,
)
from shared.config import CheckConfig
from shared.errors import NotFound
from shared.events import CheckConfigured, CheckRemoved, Event

HOME = CheckConfig(name="home", url="http://example.test/", interval=60, failures_before_alert=2)


def catalog_of(*events: Event) -> CheckCatalog:
    catalog = CheckCatalog()
    for seq, event in enumerate(events, start=1):
        catalog.apply(event, seq)
    return catalog


def test_a_new_config_check_is_configured_once() -> None:
    catalog = CheckCatalog()
    [event] = reconcile(catalog, [HOME])
    assert isinstance(event, CheckConfigured)
    assert (event.aggregate_id, event.version, event.source, event.interval_s) == (
        check_id_for("home"),
        1,
        "file",
        60.0,
    )
    catalog.apply(event, 1)
    assert reconcile(catalog, [HOME]) == []


def test_a_changed_config_check_gets_a_new_version() -> None:
    [first] = reconcile(CheckCatalog(), [HOME])
    catalog = catalog_of(first)
    [changed] = reconcile(catalog, [HOME.model_copy(update={"interval_s": 5.0})])
    assert isinstance(changed, CheckConfigured)
    assert (changed.version, changed.interval_s) == (2, 5.0)
    assert changed.id != first.id


def test_a_config_check_dropped_from_the_file_is_removed_but_api_checks_stay() -> None:
    [from_config] = reconcile(CheckCatalog(), [HOME])
    api_check = CheckDefinition(check_id=check_id_for("api"), name="api", url="http://a.test/")
    from_api = configure(CheckCatalog(), api_check)
    assert from_api is not None
    catalog = catalog_of(from_config, from_api)
    [removed] = reconcile(catalog, [])
    assert isinstance(removed, CheckRemoved)
    assert (removed.aggregate_id, removed.name, removed.version) == (
        check_id_for("home"),
        "home",
        2,
    )


def test_configuring_the_same_definition_twice_is_a_no_op() -> None:
    definition = CheckDefinition(check_id="c1", name="api", url="http://a.test/")
    first = configure(CheckCatalog(), definition)
    assert first is not None
    assert configure(catalog_of(first), definition) is None


def test_removing_an_unknown_or_removed_check_is_not_found() -> None:
    with pytest.raises(NotFound):
        remove(CheckCatalog(), "nope")
    definition = CheckDefinition(check_id="c1", name="api", url="http://a.test/")
    first = configure(CheckCatalog(), definition)
    assert first is not None
    catalog = catalog_of(first)
    catalog.apply(remove(catalog, "c1"), 2)
    with pytest.raises(NotFound):
        remove(catalog, "c1")
    assert catalog.by_name("api") is None


def test_failures_count_up_and_reset_and_drive_the_down_sample() -> None:
    definition = CheckDefinition(
        check_id="c1", name="api", url="http://a.test/", failures_before_alert=2
    )
    catalog = CheckCatalog()
    down = ProbeOutcome(ok=False, status_code=500, latency_ms=3.0, error="expected HTTP 200")
    up = ProbeOutcome(ok=True, status_code=200, latency_ms=4.25)
    seen = []
    for outcome in (down, down, down, up):
        run = record_run(catalog, definition, outcome, "schedule")
        catalog.record_run(run)
        batch = samples_for(definition, run, at=1000.0)
        values = {s["name"]: s["value"] for s in batch.samples}
        seen.append((run.consecutive_failures, run.version, values["synthetic_check_down"]))
        assert all(s["labels"] == {"check": "api"} for s in batch.samples)
        assert batch.causation_id == run.id
    assert seen == [(1, 1, 0), (2, 2, 1), (3, 3, 1), (0, 4, 0)]
    assert {s["name"]: s["value"] for s in batch.samples} == {
        "synthetic_check_up": 1,
        "synthetic_check_latency_ms": 4.25,
        "synthetic_check_down": 0,
    }
