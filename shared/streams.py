"""JetStream stream definitions: the durable event log, one stream per domain."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from shared import subjects

log = logging.getLogger(__name__)

DAY = 24 * 3600.0


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_age_s: float = 0.0  # 0 keeps events forever
    max_bytes: int = -1
    duplicate_window_s: float = 120.0
    description: str = ""

    def config(self, replicas: int = 1) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description=self.description,
            subjects=list(self.subjects),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=self.max_age_s,
            max_bytes=self.max_bytes,
            duplicate_window=self.duplicate_window_s,
            num_replicas=replicas,
            allow_direct=True,
        )


METRICS = StreamSpec(
    "METRICS",
    (f"{subjects.SAMPLES}.>",),
    max_age_s=7 * DAY,
    description="Sample batches as accepted; the metrics store and alert evaluation consume it",
)
ALERTS = StreamSpec("ALERTS", (f"{subjects.ALERT_EVENTS}.>",), description="Alert aggregate events")
INCIDENTS = StreamSpec(
    "INCIDENTS", (f"{subjects.INCIDENT_EVENTS}.>",), description="Incident aggregate events"
)
SYNTHETIC = StreamSpec(
    "SYNTHETIC",
    (f"{subjects.CHECK_DEFINITIONS}.>", f"{subjects.CHECK_RESULTS}.>"),
    description="Synthetic check definitions and run results",
)
NOTIFICATIONS = StreamSpec(
    "NOTIFICATIONS",
    (f"{subjects.NOTIFICATION_EVENTS}.>",),
    description="Delivery ledger: one outcome per (event, channel)",
)
DEADLETTERS = StreamSpec(
    "DEADLETTERS",
    (f"{subjects.DEAD_LETTERS}.>",),
    max_age_s=30 * DAY,
    description="Messages a consumer gave up on, with the reason",
)

WATCHDOG = StreamSpec(
    "WATCHDOG",
    (f"{subjects.WATCHDOG}.>", f"{subjects.WRITE_PROBES}.>"),
    max_age_s=3600.0,
    max_bytes=64 * 1024 * 1024,
    description="Self-checks: write probes, and each watchdog sample the alerts service "
    "evaluated (the notifier pings the dead-man's switch from it)",
)

ALL_STREAMS: tuple[StreamSpec, ...] = (
    METRICS,
    ALERTS,
    INCIDENTS,
    SYNTHETIC,
    NOTIFICATIONS,
    DEADLETTERS,
    WATCHDOG,
)


def stream_for_subject(subject: str) -> StreamSpec:
    for spec in ALL_STREAMS:
        for pattern in spec.subjects:
            if subject.startswith(pattern[:-1]):
                return spec
    raise KeyError(f"no stream holds subject {subject!r}")


async def ensure_streams(js: JetStreamContext, replicas: int = 1) -> None:
    """Create or update every stream; safe to call from every service at start."""
    for spec in ALL_STREAMS:
        config = spec.config(replicas)
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(config)
            log.info("created stream", extra={"stream": spec.name})
        else:
            await js.update_stream(config)
