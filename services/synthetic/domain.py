"""Synthetic checks: definitions folded from their events, and what one run records.

Pure: no I/O. Definitions are an aggregate per check on
``synthetic.checks.<check id>``; a run's result goes on
``synthetic.results.<check id>`` and, as samples, to the metrics stream, where the
default SyntheticCheckDown rule turns repeated failures into an alert.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Literal

import orjson

from shared.commands import ConfigureCheck
from shared.config import SAFE_METHODS, CheckConfig
from shared.errors import Conflict, InvalidInput, NotFound
from shared.events import (
    CheckConfigured,
    CheckRemoved,
    CheckRunRecorded,
    Event,
    Sample,
    SamplesIngested,
    derived_id,
)

SAMPLE_SOURCE = "synthetic"
UP = "synthetic_check_up"
LATENCY = "synthetic_check_latency_ms"
DOWN = "synthetic_check_down"

Source = Literal["file", "api"]
Trigger = Literal["schedule", "manual"]


def check_id_for(name: str) -> str:
    """Config and API agree on a check's id, so a name always means the same aggregate."""
    return derived_id("check", name)


@dataclass(frozen=True)
class CheckDefinition:
    check_id: str
    name: str
    url: str
    kind: Literal["http"] = "http"
    method: str = "GET"
    expected_status: int = 200
    timeout_s: float = 10.0
    interval_s: float = 30.0
    failures_before_alert: int = 3
    enabled: bool = True
    source: Source = "api"
    allow_unsafe_method: bool = False

    @classmethod
    def from_event(cls, event: CheckConfigured) -> CheckDefinition:
        return cls(
            check_id=event.aggregate_id,
            name=event.name,
            kind=event.kind,
            url=event.url,
            method=event.method,
            expected_status=event.expected_status,
            timeout_s=event.timeout_s,
            interval_s=event.interval_s,
            failures_before_alert=event.failures_before_alert,
            enabled=event.enabled,
            source="api" if event.source == "api" else "file",
            allow_unsafe_method=event.allow_unsafe_method,
        )

    @classmethod
    def from_config(cls, check: CheckConfig) -> CheckDefinition:
        return cls(
            check_id=check_id_for(check.name),
            name=check.name,
            kind=check.type,
            url=check.url,
            method=check.method,
            expected_status=check.expected_status,
            timeout_s=check.timeout_s,
            interval_s=check.interval_s,
            failures_before_alert=check.failures_before_alert,
            enabled=check.enabled,
            source="file",
            allow_unsafe_method=check.allow_unsafe_method,
        )

    @classmethod
    def from_command(cls, command: ConfigureCheck, check_id: str) -> CheckDefinition:
        return cls(
            check_id=check_id,
            name=command.name,
            kind=command.kind,
            url=command.url,
            method=command.method,
            expected_status=command.expected_status,
            timeout_s=command.timeout_s,
            interval_s=command.interval_s,
            failures_before_alert=command.failures_before_alert,
            enabled=command.enabled,
            source="api",
            allow_unsafe_method=command.allow_unsafe_method,
        )

    @property
    def method_allowed(self) -> bool:
        """Only GET and HEAD leave the target as it was, unless an admin said otherwise."""
        return self.method in SAFE_METHODS or self.allow_unsafe_method

    def digest(self) -> str:
        return hashlib.sha256(orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class SubjectPosition:
    """Where an aggregate's subject stands: for the next version and the expected sequence."""

    version: int = 0
    last_seq: int = 0


@dataclass
class CheckCatalog:
    """Live definitions plus what is needed to append to and run each check."""

    definitions: dict[str, CheckDefinition] = field(default_factory=dict)
    positions: dict[str, SubjectPosition] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    run_versions: dict[str, int] = field(default_factory=dict)

    def apply(self, event: Event, seq: int) -> None:
        position = self.positions.setdefault(event.aggregate_id, SubjectPosition())
        position.version += 1
        position.last_seq = seq
        if isinstance(event, CheckConfigured):
            self.definitions[event.aggregate_id] = CheckDefinition.from_event(event)
        elif isinstance(event, CheckRemoved):
            self.definitions.pop(event.aggregate_id, None)

    def clear(self) -> None:
        self.definitions.clear()
        self.positions.clear()
        self.failures.clear()
        self.run_versions.clear()

    def forget(self, check_id: str) -> None:
        """Drop what is known of one definition subject before reloading it."""
        self.definitions.pop(check_id, None)
        self.positions.pop(check_id, None)

    def position(self, check_id: str) -> SubjectPosition:
        return self.positions.get(check_id, SubjectPosition())

    def get(self, check_id: str) -> CheckDefinition:
        try:
            return self.definitions[check_id]
        except KeyError:
            raise NotFound(f"no check {check_id!r}", field="check_id") from None

    def by_name(self, name: str) -> CheckDefinition | None:
        return next((d for d in self.definitions.values() if d.name == name), None)

    def active(self, check_id: str) -> CheckDefinition | None:
        definition = self.definitions.get(check_id)
        return definition if definition is not None and definition.enabled else None

    def active_ids(self) -> list[str]:
        return [i for i, d in self.definitions.items() if d.enabled]

    def record_run(self, run: CheckRunRecorded) -> None:
        self.failures[run.aggregate_id] = run.consecutive_failures
        self.run_versions[run.aggregate_id] = run.version


# --- decisions -------------------------------------------------------------------


def refuse_file_managed(catalog: CheckCatalog, check_id: str, config_file: str) -> None:
    """Checks from the configuration file are changed there, not through the API."""
    definition = catalog.definitions.get(check_id)
    if definition is not None and definition.source == "file":
        where = f" {config_file}" if config_file else ""
        raise Conflict(
            f"name: check {definition.name!r} is managed by the configuration file{where}; "
            "change it there",
            field="name",
        )


def configure(catalog: CheckCatalog, definition: CheckDefinition) -> CheckConfigured | None:
    """The event that makes ``definition`` current, or None when it already is."""
    if catalog.definitions.get(definition.check_id) == definition:
        return None
    version = catalog.position(definition.check_id).version + 1
    return CheckConfigured(
        id=derived_id("check-configured", definition.check_id, version, definition.digest()),
        aggregate_id=definition.check_id,
        version=version,
        name=definition.name,
        kind=definition.kind,
        url=definition.url,
        method=definition.method,
        expected_status=definition.expected_status,
        timeout_s=definition.timeout_s,
        interval_s=definition.interval_s,
        failures_before_alert=definition.failures_before_alert,
        enabled=definition.enabled,
        source=definition.source,
        allow_unsafe_method=definition.allow_unsafe_method,
    )


def require_safe_method(definition: CheckDefinition) -> None:
    if not definition.method_allowed:
        raise InvalidInput(
            f"method: {definition.method} may change the target's state; "
            "an admin must set allow_unsafe_method: true to allow it",
            field="method",
        )


def remove(catalog: CheckCatalog, check_id: str) -> CheckRemoved:
    definition = catalog.get(check_id)
    version = catalog.position(check_id).version + 1
    return CheckRemoved(
        id=derived_id("check-removed", check_id, version),
        aggregate_id=check_id,
        version=version,
        name=definition.name,
    )


def reconcile(catalog: CheckCatalog, configured: list[CheckConfig]) -> list[Event]:
    """Events that bring the log in line with the config file; none when it already is.

    A check that came from the config and is no longer in it is removed; checks
    created through the API are left alone. Config wins over API edits to a
    config-defined check.
    """
    wanted = [CheckDefinition.from_config(check) for check in configured]
    wanted_ids = {d.check_id for d in wanted}
    events: list[Event] = [e for d in wanted if (e := configure(catalog, d)) is not None]
    events.extend(
        remove(catalog, check_id)
        for check_id, definition in catalog.definitions.items()
        if definition.source == "file" and check_id not in wanted_ids
    )
    return events


# --- runs ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeOutcome:
    ok: bool
    status_code: int | None
    latency_ms: float
    error: str = ""


def record_run(
    catalog: CheckCatalog, definition: CheckDefinition, outcome: ProbeOutcome, trigger: Trigger
) -> CheckRunRecorded:
    previous = catalog.failures.get(definition.check_id, 0)
    return CheckRunRecorded(
        aggregate_id=definition.check_id,
        version=catalog.run_versions.get(definition.check_id, 0) + 1,
        name=definition.name,
        ok=outcome.ok,
        status_code=outcome.status_code,
        latency_ms=round(outcome.latency_ms, 3),
        error=outcome.error[:2000],
        consecutive_failures=0 if outcome.ok else previous + 1,
        trigger=trigger,
    )


def samples_for(definition: CheckDefinition, run: CheckRunRecorded, at: float) -> SamplesIngested:
    labels = {"check": definition.name}
    down = 1 if run.consecutive_failures >= definition.failures_before_alert else 0
    return SamplesIngested(
        id=derived_id(run.id, "samples"),
        aggregate_id=SAMPLE_SOURCE,
        correlation_id=run.correlation_id,
        causation_id=run.id,
        received_at=at,
        samples=[
            Sample(name=UP, value=1 if run.ok else 0, timestamp=at, labels=labels),
            Sample(name=LATENCY, value=float(run.latency_ms), timestamp=at, labels=labels),
            Sample(name=DOWN, value=down, timestamp=at, labels=labels),
        ],
    )
