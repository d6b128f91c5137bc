"""Request/reply contracts: commands (imperative) and queries, with their subjects.

The gateway validates HTTP bodies into these models and sends them; the owning
service validates again on receipt (``parse_command``) so a bad request from any
client gets a named-field error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared import subjects
from shared.config import ChannelConfig, RuleConfig
from shared.errors import InvalidInput
from shared.events.incidents import IncidentSeverity, IncidentStatus
from shared.events.logs import Level
from shared.events.silences import SilenceMatcher
from shared.maintenanceconfig import MaintenanceWindowConfig
from shared.pagingconfig import ContactConfig, EscalationPolicyConfig, ScheduleConfig

Actor = str
MAX_LOG_PAGE = 1000
MAX_LOG_QUERY_CHARS = 2000
MAX_LOG_BUCKETS = 11_000
MAX_TITLE_CHARS = 300  # an incident's title, whoever opens it


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- alerts ------------------------------------------------------------------
class AcknowledgeAlert(Command):
    alert_id: str
    by: Actor = Field(default="api", min_length=1, max_length=100)
    comment: str = Field(default="", max_length=2000)


class ResolveAlert(Command):
    alert_id: str
    by: Actor = Field(default="api", min_length=1, max_length=100)


# --- incidents ---------------------------------------------------------------
class OpenIncident(Command):
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    severity: IncidentSeverity = "warning"
    description: str = Field(default="", max_length=10_000)
    assignee: str = Field(default="", max_length=100)
    by: Actor = Field(default="api", min_length=1, max_length=100)


class ChangeIncidentStatus(Command):
    incident_id: str
    status: IncidentStatus
    by: Actor = Field(default="api", min_length=1, max_length=100)
    message: str = Field(default="", max_length=10_000)


class AddIncidentNote(Command):
    incident_id: str
    text: str = Field(min_length=1, max_length=10_000)
    author: Actor = Field(default="api", min_length=1, max_length=100)


class AssignIncident(Command):
    incident_id: str
    assignee: str = Field(min_length=1, max_length=100)
    by: Actor = Field(default="api", min_length=1, max_length=100)


class ChangeIncidentSeverity(Command):
    incident_id: str
    severity: IncidentSeverity
    by: Actor = Field(default="api", min_length=1, max_length=100)


# --- synthetic ---------------------------------------------------------------
class ConfigureCheck(Command):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\- ]+$")
    kind: Literal["http"] = "http"
    url: str = Field(pattern=r"^https?://", max_length=2000)
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] = "GET"
    expected_status: int = Field(default=200, ge=100, le=599)
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    interval_s: float = Field(default=30.0, ge=0.5, le=86_400)
    failures_before_alert: int = Field(default=3, ge=1, le=100)
    enabled: bool = True
    allow_unsafe_method: bool = Field(
        default=False, description="An admin allows a method other than GET or HEAD"
    )


class RemoveCheck(Command):
    check_id: str


class RunCheck(Command):
    check_id: str


# --- rules (owned by alerts) and channels (owned by the notifier) -----------
class CreateRule(Command):
    rule: RuleConfig
    by: Actor = Field(default="api", min_length=1, max_length=100)


class UpdateRule(Command):
    name: str = Field(min_length=1, max_length=100, description="The rule to change")
    rule: RuleConfig
    by: Actor = Field(default="api", min_length=1, max_length=100)


class DeleteRule(Command):
    name: str = Field(min_length=1, max_length=100)
    by: Actor = Field(default="api", min_length=1, max_length=100)


class CreateChannel(Command):
    channel: ChannelConfig = Field(description="The secret in clear; the notifier encrypts it")
    by: Actor = Field(default="api", min_length=1, max_length=100)


class UpdateChannel(Command):
    name: str = Field(min_length=1, max_length=100, description="The channel to change")
    channel: ChannelConfig = Field(description='A secret of "(set)" keeps the current one')
    by: Actor = Field(default="api", min_length=1, max_length=100)


class DeleteChannel(Command):
    name: str = Field(min_length=1, max_length=100)
    by: Actor = Field(default="api", min_length=1, max_length=100)


class ReencryptChannels(Command):
    """Read the secret keys again and encrypt every current channel secret with the newest."""

    by: Actor = Field(default="vigil secrets rotate", min_length=1, max_length=100)


class ReencryptResult(BaseModel):
    reencrypted: int = Field(description="Channel secrets encrypted again with the newest key")
    keys: int = Field(description="Keys the notifier now holds")
    seq: int = Field(description="Stream sequence of the last event appended; 0 if none")


# --- contacts, schedules and escalation policies (owned by the notifier) -----
class CreateContact(Command):
    contact: ContactConfig
    by: Actor = Field(default="api", min_length=1, max_length=100)


class UpdateContact(Command):
    name: str = Field(min_length=1, max_length=100, description="The user whose contact changes")
    contact: ContactConfig
    by: Actor = Field(default="api", min_length=1, max_length=100)


class DeleteContact(Command):
    name: str = Field(min_length=1, max_length=100)
    by: Actor = Field(default="api", min_length=1, max_length=100)


class CreateSchedule(Command):
    schedule: ScheduleConfig
    by: Actor = Field(default="api", min_length=1, max_length=100)


class UpdateSchedule(Command):
    name: str = Field(min_length=1, max_length=100, description="The schedule to change")
    schedule: ScheduleConfig
    by: Actor = Field(default="api", min_length=1, max_length=100)


class DeleteSchedule(Command):
    name: str = Field(min_length=1, max_length=100)
    by: Actor = Field(default="api", min_length=1, max_length=100)


class CreatePolicy(Command):
    policy: EscalationPolicyConfig
    by: Actor = Field(default="api", min_length=1, max_length=100)


class UpdatePolicy(Command):
    name: str = Field(min_length=1, max_length=100, description="The policy to change")
    policy: EscalationPolicyConfig
    by: Actor = Field(default="api", min_length=1, max_length=100)


class DeletePolicy(Command):
    name: str = Field(min_length=1, max_length=100)
    by: Actor = Field(default="api", min_length=1, max_length=100)


class SendChannelTest(Command):
    """Send a clearly marked test message through one channel, now, outside the ledger."""

    name: str = Field(min_length=1, max_length=100, description="The channel to test")
    by: Actor = Field(default="api", min_length=1, max_length=100)


class ChannelTestResult(BaseModel):
    channel: str
    delivered: bool
    status_code: int | None = Field(description="The receiver's HTTP status, when it answered")
    latency_ms: float
    error: str = Field(default="", description="Why the receiver did not take it; empty if it did")


# --- silences and maintenance windows (owned by alerts) ----------------------
MAX_SILENCE_MATCHERS = 64
MAX_SILENCE_COMMENT_CHARS = 2000


class PostableSilence(Command):
    """Alertmanager's v2 ``postableSilence``: with ``id``, an update of that silence (a
    change of matchers, or of the start of one already in force, makes a new silence and
    expires the old one, as Alertmanager does)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(default="", max_length=100, description="The silence to update; empty: new")
    matchers: list[SilenceMatcher] = Field(min_length=1, max_length=MAX_SILENCE_MATCHERS)
    starts_at: AwareDatetime | None = Field(
        default=None, alias="startsAt", description="Default: now; a time past means now"
    )
    ends_at: AwareDatetime = Field(alias="endsAt")
    created_by: str = Field(alias="createdBy", min_length=1, max_length=100)
    comment: str = Field(default="", max_length=MAX_SILENCE_COMMENT_CHARS)


class CreateSilence(PostableSilence):
    request_id: str = Field(
        default="",
        max_length=200,
        description="An idempotency key: the same key (or, without one, the same request) "
        "within minutes answers the silence made the first time",
    )
    by: Actor = Field(default="api", min_length=1, max_length=100)


class ExpireSilence(Command):
    silence_id: str = Field(min_length=1, max_length=100)
    by: Actor = Field(default="api", min_length=1, max_length=100)


class CreateMaintenanceWindow(Command):
    window: MaintenanceWindowConfig
    by: Actor = Field(default="api", min_length=1, max_length=100)


class UpdateMaintenanceWindow(Command):
    name: str = Field(min_length=1, max_length=100, description="The window to change")
    window: MaintenanceWindowConfig
    by: Actor = Field(default="api", min_length=1, max_length=100)


class DeleteMaintenanceWindow(Command):
    name: str = Field(min_length=1, max_length=100)
    by: Actor = Field(default="api", min_length=1, max_length=100)


# --- dead letters (answered by the service running the dead letter's consumer) --
class RetryDeadLetter(Command):
    """Hand a dead-lettered message to its consumer's handler again.

    Carries the dead letter as recorded; the owner checks that the id matches the
    consumer, stream and sequence before acting on it.
    """

    dead_letter_id: str = Field(min_length=1, max_length=100)
    consumer: str = Field(min_length=1, max_length=200)
    stream: str = Field(min_length=1, max_length=100)
    stream_seq: int = Field(ge=1)
    subject: str = Field(max_length=500)
    deliveries: int = Field(ge=0)
    payload: str = Field(
        description="The message as dead-lettered, used when the stream no longer holds it"
    )
    by: Actor = Field(default="api", min_length=1, max_length=100)


class DeadLetterRetryResult(BaseModel):
    dead_letter_id: str
    consumer: str
    attempt: int = Field(description="How many times this dead letter has been re-driven")
    outcome: Literal["succeeded", "failed"]
    source: Literal["stream", "payload"]
    seq: int = Field(description="Stream sequence of the DeadLetterRetried event")
    stream: str = Field(description="The stream that event is on (DEADLETTERS)")


# --- metrics queries ---------------------------------------------------------
class QuerySamples(Command):
    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    start: float | None = Field(default=None, description="Unix seconds, inclusive")
    end: float | None = Field(default=None, description="Unix seconds, inclusive")
    limit: int = Field(default=1000, ge=1, le=100_000)


class LogFilter(Command):
    """What the log queries share: a time range, levels, services, labels and text."""

    start: float | None = Field(default=None, description="Unix seconds, inclusive")
    end: float | None = Field(default=None, description="Unix seconds, exclusive")
    levels: list[Level] = Field(default_factory=list, description="Any of these; empty: all")
    services: list[str] = Field(default_factory=list, description="Any of these; empty: all")
    labels: dict[str, str] = Field(default_factory=dict, description="Exact matches, all")
    q: str = Field(default="", max_length=MAX_LOG_QUERY_CHARS, description="Text search")


class SearchLogs(LogFilter):
    limit: int = Field(default=100, ge=1, le=MAX_LOG_PAGE)
    cursor: str | None = Field(default=None, max_length=64, description="From next_cursor")


class LogHistogram(LogFilter):
    step: float = Field(ge=0.001, description="Seconds per bucket (a millisecond at least)")


def check_log_buckets(start: float, end: float, step: float) -> None:
    buckets = (end - start) / step
    if buckets > MAX_LOG_BUCKETS:
        raise InvalidInput(
            f"step: {buckets:.0f} buckets is over the limit of {MAX_LOG_BUCKETS}; take a "
            "larger step",
            field="step",
        )


class MetricsStats(Command):
    """No parameters: the metrics store's counters."""


MAX_PROM_POINTS = 11_000  # per series of a range query, as Prometheus
MAX_AGGREGATE_POINTS = MAX_PROM_POINTS
AGGREGATIONS = ("avg", "min", "max", "sum", "count", "last", "p50", "p90", "p99")
Aggregation = Literal["avg", "min", "max", "sum", "count", "last", "p50", "p90", "p99"]
MAX_GROUP_BY = 16  # labels a dashboard chart may group by


MAX_UNIX_S = 253402300799.0  # 9999-12-31T23:59:59Z: any later time is a mistake


class AggregateSamples(Command):
    """One value per ``step`` and group of series: what a chart over hours or days draws."""

    name: str = Field(min_length=1, max_length=200)
    labels: dict[str, str] = Field(default_factory=dict, description="Exact label matches")
    start: float = Field(ge=0, le=MAX_UNIX_S, description="Unix seconds, inclusive")
    end: float = Field(ge=0, le=MAX_UNIX_S, description="Unix seconds, inclusive")
    step: float = Field(gt=0, le=MAX_UNIX_S, description="Seconds per bucket")
    aggregation: Aggregation = "avg"
    by: list[str] = Field(default_factory=list, max_length=MAX_GROUP_BY)

    @model_validator(mode="after")
    def _window(self) -> AggregateSamples:
        if self.end < self.start:
            raise InvalidInput("end: must not be before start", field="end")
        if (self.end - self.start) / self.step > MAX_AGGREGATE_POINTS:
            raise InvalidInput(
                f"step: more than {MAX_AGGREGATE_POINTS} points per series; raise it",
                field="step",
            )
        return self


# PromQL over the metrics store (or the remote store it is configured to ask). Times
# are Unix milliseconds; the gateway has turned Prometheus' parameters into these.
PROM_DEFAULT_TIMEOUT_S = 30.0
PROM_MAX_TIMEOUT_S = 120.0
MAX_PROM_QUERY_CHARS = 64 * 1024
# Prometheus' minTime/maxTime: a lookup without start or end spans everything
PROM_MIN_TIME_MS = -62135596800000
PROM_MAX_TIME_MS = 253402300799000
MAX_PROM_MATCHERS = 64  # match[] selectors of one series/labels request


class PromInstantQuery(Command):
    query: str = Field(min_length=1, max_length=MAX_PROM_QUERY_CHARS)
    time_ms: int
    timeout_s: float = Field(default=PROM_DEFAULT_TIMEOUT_S, gt=0, le=PROM_MAX_TIMEOUT_S)


class PromRangeQuery(Command):
    query: str = Field(min_length=1, max_length=MAX_PROM_QUERY_CHARS)
    start_ms: int
    end_ms: int
    step_ms: int = Field(gt=0)
    timeout_s: float = Field(default=PROM_DEFAULT_TIMEOUT_S, gt=0, le=PROM_MAX_TIMEOUT_S)

    @model_validator(mode="after")
    def _window(self) -> PromRangeQuery:
        if self.end_ms < self.start_ms:
            raise InvalidInput("end_ms: must not be before start_ms", field="end_ms")
        if (self.end_ms - self.start_ms) // self.step_ms > MAX_PROM_POINTS:
            raise InvalidInput(
                f"step_ms: more than {MAX_PROM_POINTS} points per series", field="step_ms"
            )
        return self


class PromSeriesQuery(Command):
    """``match`` holds series selectors (``up{job="api"}``); a series matching any is in."""

    match: list[str] = Field(default_factory=list, max_length=MAX_PROM_MATCHERS)
    start_ms: int
    end_ms: int
    limit: int = Field(default=0, ge=0, description="0: no limit")


class PromLabelsQuery(PromSeriesQuery):
    """Label names of the series matching any selector of ``match`` (all when empty)."""


class PromLabelValuesQuery(PromSeriesQuery):
    """Values of label ``name`` over the series matching any selector of ``match``."""

    name: str = Field(min_length=1, max_length=200)


# --- alerts queries ----------------------------------------------------------
class ExplainLabels(Command):
    """What ``rule`` would do with a series of ``labels`` now."""

    rule: str = Field(min_length=1, max_length=200)
    labels: dict[str, str] = Field(default_factory=dict, max_length=64)


class CommandResult(BaseModel):
    """What a command answers: the aggregate it touched and where its last event landed."""

    aggregate_id: str
    version: int
    seq: int = Field(description="Stream sequence of the last appended event; 0 if none")
    stream: str


# --- subjects ----------------------------------------------------------------
ACKNOWLEDGE_ALERT = subjects.command(subjects.ALERT_COMMANDS, "acknowledge")
RESOLVE_ALERT = subjects.command(subjects.ALERT_COMMANDS, "resolve")
OPEN_INCIDENT = subjects.command(subjects.INCIDENT_COMMANDS, "open")
CHANGE_INCIDENT_STATUS = subjects.command(subjects.INCIDENT_COMMANDS, "status")
ADD_INCIDENT_NOTE = subjects.command(subjects.INCIDENT_COMMANDS, "note")
ASSIGN_INCIDENT = subjects.command(subjects.INCIDENT_COMMANDS, "assign")
CHANGE_INCIDENT_SEVERITY = subjects.command(subjects.INCIDENT_COMMANDS, "severity")
CONFIGURE_CHECK = subjects.command(subjects.CHECK_COMMANDS, "configure")
REMOVE_CHECK = subjects.command(subjects.CHECK_COMMANDS, "remove")
RUN_CHECK = subjects.command(subjects.CHECK_COMMANDS, "run")
CREATE_RULE = subjects.command(subjects.RULE_COMMANDS, "create")
UPDATE_RULE = subjects.command(subjects.RULE_COMMANDS, "update")
DELETE_RULE = subjects.command(subjects.RULE_COMMANDS, "delete")
CREATE_CHANNEL = subjects.command(subjects.CHANNEL_COMMANDS, "create")
UPDATE_CHANNEL = subjects.command(subjects.CHANNEL_COMMANDS, "update")
DELETE_CHANNEL = subjects.command(subjects.CHANNEL_COMMANDS, "delete")
REENCRYPT_CHANNELS = subjects.command(subjects.CHANNEL_COMMANDS, "reencrypt")
CREATE_CONTACT = subjects.command(subjects.CONTACT_COMMANDS, "create")
UPDATE_CONTACT = subjects.command(subjects.CONTACT_COMMANDS, "update")
DELETE_CONTACT = subjects.command(subjects.CONTACT_COMMANDS, "delete")
CREATE_SCHEDULE = subjects.command(subjects.SCHEDULE_COMMANDS, "create")
UPDATE_SCHEDULE = subjects.command(subjects.SCHEDULE_COMMANDS, "update")
DELETE_SCHEDULE = subjects.command(subjects.SCHEDULE_COMMANDS, "delete")
CREATE_POLICY = subjects.command(subjects.POLICY_COMMANDS, "create")
UPDATE_POLICY = subjects.command(subjects.POLICY_COMMANDS, "update")
DELETE_POLICY = subjects.command(subjects.POLICY_COMMANDS, "delete")
TEST_CHANNEL = subjects.command(subjects.CHANNEL_COMMANDS, "test")
CREATE_SILENCE = subjects.command(subjects.SILENCE_COMMANDS, "create")
EXPIRE_SILENCE = subjects.command(subjects.SILENCE_COMMANDS, "expire")
CREATE_MAINTENANCE = subjects.command(subjects.MAINTENANCE_COMMANDS, "create")
UPDATE_MAINTENANCE = subjects.command(subjects.MAINTENANCE_COMMANDS, "update")
DELETE_MAINTENANCE = subjects.command(subjects.MAINTENANCE_COMMANDS, "delete")
QUERY_SAMPLES = subjects.command(subjects.METRICS_QUERY, "samples")
QUERY_METRICS_STATS = subjects.command(subjects.METRICS_QUERY, "stats")
AGGREGATE_SAMPLES = subjects.command(subjects.METRICS_QUERY, "aggregate")
PROM_INSTANT_QUERY = subjects.command(subjects.METRICS_QUERY, "promql_instant")
PROM_RANGE_QUERY = subjects.command(subjects.METRICS_QUERY, "promql_range")
PROM_SERIES = subjects.command(subjects.METRICS_QUERY, "series")
PROM_LABELS = subjects.command(subjects.METRICS_QUERY, "labels")
PROM_LABEL_VALUES = subjects.command(subjects.METRICS_QUERY, "label_values")
EXPLAIN_LABELS = subjects.command(subjects.ALERT_QUERY, "explain")
SEARCH_LOGS = subjects.command(subjects.LOGS_QUERY, "search")
LOG_HISTOGRAM = subjects.command(subjects.LOGS_QUERY, "histogram")

C = TypeVar("C", bound=BaseModel)


def field_path(loc: Sequence[int | str], indexed: bool = False) -> str:
    """A field's name from a pydantic location: ``a.0.b``, or with ``indexed``
    ``a[0].b`` (as Alertmanager's bodies and the configuration file name them)."""
    if not indexed:
        return ".".join(str(p) for p in loc)
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def parse_command(model: type[C], body: dict[str, Any], indexed: bool = False) -> C:
    """Validate a request body; the error names the first bad field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = field_path(first["loc"], indexed) or "(body)"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInput(f"{field}: {message}", field=field) from exc
