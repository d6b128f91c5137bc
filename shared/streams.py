"""JetStream stream definitions: the durable event log, one stream per domain.

Every stream has a byte and an age limit, from settings (``VIGIL_STREAM_<NAME>_MAX_BYTES``,
``..._MAX_AGE_S``; WATCHDOG's are fixed). Streams of measurements, self-checks and dead
letters drop their oldest messages at a limit. The event-sourced streams are the system's
state: at a limit they refuse new events (JetStream's discard "new"), so the failure is
loud and no history is lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

from shared import subjects
from shared.settings import Settings

log = logging.getLogger(__name__)

INSUFFICIENT_STORAGE = 10047
RUNS_KEPT_PER_CHECK = 100_000


@dataclass(frozen=True)
class StreamLimits:
    max_bytes: int
    max_age_s: float  # 0 keeps events forever


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    keeps_history: bool = True  # at a limit: refuse new events (True) or drop the oldest
    max_msgs_per_subject: int = -1  # beyond it a subject's oldest message goes
    duplicate_window_s: float = 120.0
    description: str = ""

    @property
    def max_bytes_setting(self) -> str:
        return f"VIGIL_STREAM_{self.name}_MAX_BYTES"

    def config(self, limits: StreamLimits, replicas: int = 1) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description=self.description,
            subjects=list(self.subjects),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW if self.keeps_history else DiscardPolicy.OLD,
            max_age=limits.max_age_s,
            max_bytes=limits.max_bytes,
            max_msgs_per_subject=self.max_msgs_per_subject,
            duplicate_window=self.duplicate_window_s,
            num_replicas=replicas,
            allow_direct=True,
        )

    def full_message(self) -> str:
        """Why a publish was refused when the stream reached its byte limit."""
        return (
            f"stream {self.name} is full: it reached its byte limit ({self.max_bytes_setting}) "
            "and refuses new events rather than drop history; raise the limit"
        )


METRICS = StreamSpec(
    "METRICS",
    (f"{subjects.SAMPLES}.>",),
    keeps_history=False,
    description="Sample batches as accepted; the metrics store and alert evaluation consume it",
)
LOGS = StreamSpec(
    "LOGS",
    (f"{subjects.LOG_ENTRIES}.>",),
    keeps_history=False,
    description="Log line batches as accepted; the log store consumes it, live tail reads it",
)
ALERTS = StreamSpec("ALERTS", (f"{subjects.ALERT_EVENTS}.>",), description="Alert aggregate events")
INCIDENTS = StreamSpec(
    "INCIDENTS", (f"{subjects.INCIDENT_EVENTS}.>",), description="Incident aggregate events"
)
SYNTHETIC = StreamSpec(
    "SYNTHETIC",
    (f"{subjects.CHECK_DEFINITIONS}.>", f"{subjects.CHECK_RESULTS}.>"),
    # run results are measurements, not state: each check keeps its latest 100,000 (about
    # 35 days at a 30 s interval), so they never fill the stream that holds the definitions
    # (a definition changes far fewer times than that, and only its latest state counts)
    max_msgs_per_subject=RUNS_KEPT_PER_CHECK,
    description="Synthetic check definitions and run results",
)
NOTIFICATIONS = StreamSpec(
    "NOTIFICATIONS",
    (f"{subjects.NOTIFICATION_EVENTS}.>",),
    description="Delivery ledger: one outcome per (event, channel)",
)
PAGING = StreamSpec(
    "PAGING",
    (f"{subjects.PAGING_EVENTS}.>",),
    description="Escalations: each alert's run through its policy, step deadlines included",
)
SILENCES = StreamSpec(
    "SILENCES",
    (f"{subjects.SILENCE_EVENTS}.>",),
    description="Silences: created, updated and expired; the alerts service applies them",
)
DEADLETTERS = StreamSpec(
    "DEADLETTERS",
    (f"{subjects.DEAD_LETTERS}.>",),
    keeps_history=False,
    description="Messages a consumer gave up on, with the reason",
)
CONFIG = StreamSpec(
    "CONFIG",
    (f"{subjects.CONFIG}.>",),
    description="Rules, channels, contacts, schedules and escalation policies: their changes "
    "through the API, and the items of the "
    "configuration file as each owner provisioned them",
)

WATCHDOG = StreamSpec(
    "WATCHDOG",
    (f"{subjects.WATCHDOG}.>", f"{subjects.WRITE_PROBES}.>"),
    keeps_history=False,
    description="Self-checks: write probes, and each watchdog sample the alerts service "
    "evaluated (the notifier pings the dead-man's switch from it)",
)

IDENTITY = StreamSpec(
    "IDENTITY",
    (
        f"{subjects.IDENTITY_USERS}.>",
        f"{subjects.IDENTITY_KEYS}.>",
        f"{subjects.IDENTITY_SESSIONS}.>",
    ),
    description="Users, API keys and browser sessions; the gateway projects them",
)
AUDIT = StreamSpec(
    "AUDIT",
    (f"{subjects.AUDIT_EVENTS}.>",),
    keeps_history=False,
    description="Every write through the API, refused ones included: who, what, outcome",
)

ALL_STREAMS: tuple[StreamSpec, ...] = (
    METRICS,
    LOGS,
    ALERTS,
    INCIDENTS,
    SYNTHETIC,
    NOTIFICATIONS,
    PAGING,
    SILENCES,
    DEADLETTERS,
    CONFIG,
    WATCHDOG,
    IDENTITY,
    AUDIT,
)


def stream_named(name: str) -> StreamSpec:
    for spec in ALL_STREAMS:
        if spec.name == name:
            return spec
    raise KeyError(f"no stream {name!r}")


def stream_for_subject(subject: str) -> StreamSpec:
    for spec in ALL_STREAMS:
        for pattern in spec.subjects:
            if subject.startswith(pattern[:-1]):
                return spec
    raise KeyError(f"no stream holds subject {subject!r}")


# self-checks matter only while fresh: fixed, not a setting
WATCHDOG_LIMITS = StreamLimits(max_bytes=64 * 1024 * 1024, max_age_s=3600.0)
# configuration changes are few and small: kept forever, fixed
CONFIG_LIMITS = StreamLimits(max_bytes=1024 * 1024 * 1024, max_age_s=0.0)


def stream_limits(settings: Settings) -> dict[str, StreamLimits]:
    return {
        METRICS.name: StreamLimits(
            settings.stream_metrics_max_bytes, settings.stream_metrics_max_age_s
        ),
        LOGS.name: StreamLimits(settings.stream_logs_max_bytes, settings.stream_logs_max_age_s),
        ALERTS.name: StreamLimits(
            settings.stream_alerts_max_bytes, settings.stream_alerts_max_age_s
        ),
        INCIDENTS.name: StreamLimits(
            settings.stream_incidents_max_bytes, settings.stream_incidents_max_age_s
        ),
        SYNTHETIC.name: StreamLimits(
            settings.stream_synthetic_max_bytes, settings.stream_synthetic_max_age_s
        ),
        NOTIFICATIONS.name: StreamLimits(
            settings.stream_notifications_max_bytes, settings.stream_notifications_max_age_s
        ),
        PAGING.name: StreamLimits(
            settings.stream_paging_max_bytes, settings.stream_paging_max_age_s
        ),
        SILENCES.name: StreamLimits(
            settings.stream_silences_max_bytes, settings.stream_silences_max_age_s
        ),
        DEADLETTERS.name: StreamLimits(
            settings.stream_deadletters_max_bytes, settings.stream_deadletters_max_age_s
        ),
        CONFIG.name: CONFIG_LIMITS,
        WATCHDOG.name: WATCHDOG_LIMITS,
        IDENTITY.name: StreamLimits(
            settings.stream_identity_max_bytes, settings.stream_identity_max_age_s
        ),
        AUDIT.name: StreamLimits(settings.stream_audit_max_bytes, settings.stream_audit_max_age_s),
    }


async def ensure_streams(js: JetStreamContext, settings: Settings) -> None:
    """Create or update every stream with its configured limits; safe to call from every
    service at start. A limit below what an event-sourced stream holds already removes
    nothing: the stream then refuses writes until the limit is raised."""
    limits = stream_limits(settings)
    for spec in ALL_STREAMS:
        config = spec.config(limits[spec.name], settings.stream_replicas)
        try:
            try:
                info = await js.stream_info(spec.name)
            except NotFoundError:
                await js.add_stream(config)
                log.info("created stream", extra={"stream": spec.name})
            else:
                # only a change is sent: services may not reconfigure a stream (their
                # NATS users lack the right), the operator's tools apply new limits
                if not same_stream_config(info.config, config):
                    await js.update_stream(config)
        except APIError as exc:
            if exc.err_code == INSUFFICIENT_STORAGE:
                raise RuntimeError(
                    f"stream {spec.name}: the NATS server cannot reserve "
                    f"{config.max_bytes} bytes for it ({exc.description}); lower "
                    f"{spec.max_bytes_setting} or raise the server's max_file_store"
                ) from exc
            raise


COMPARED_FIELDS = (
    "subjects",
    "retention",
    "storage",
    "discard",
    "max_bytes",
    "max_msgs_per_subject",
    "num_replicas",
    "allow_direct",
    "description",
)


def same_stream_config(stored: StreamConfig, wanted: StreamConfig) -> bool:
    """Whether the server's stream already has every setting Vigil declares."""
    for name in COMPARED_FIELDS:
        have, want = getattr(stored, name), getattr(wanted, name)
        if name == "description":
            have, want = have or "", want or ""
        if have != want:
            return False
    for name in ("max_age", "duplicate_window"):  # seconds, from nanoseconds on the wire
        if abs(float(getattr(stored, name) or 0) - float(getattr(wanted, name) or 0)) > 1e-3:
            return False
    return True
