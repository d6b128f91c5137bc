"""Every event contract in Vigil. Importing this package registers all types for decoding."""

from shared.events.alerts import (
    AlertAcknowledged,
    AlertEscalated,
    AlertEvent,
    AlertFired,
    AlertResolved,
    Severity,
)
from shared.events.audit import AuditRecorded
from shared.events.base import Event, UndecodableEvent, decode_event, derived_id, new_id, utcnow
from shared.events.config import (
    ChannelCreated,
    ChannelDeleted,
    ChannelsProvisioned,
    ChannelUpdated,
    RuleCreated,
    RuleDeleted,
    RulesProvisioned,
    RuleUpdated,
)
from shared.events.deadletters import MessageDeadLettered
from shared.events.identity import (
    ApiKeyCreated,
    ApiKeyRevoked,
    SessionEnded,
    SessionStarted,
    UserCreated,
    UserRemoved,
    UserUpdated,
)
from shared.events.incidents import (
    IncidentAssigned,
    IncidentNoteAdded,
    IncidentOpened,
    IncidentResolved,
    IncidentSeverity,
    IncidentSeverityChanged,
    IncidentStatus,
    IncidentStatusChanged,
)
from shared.events.metrics import (
    MAX_BATCH_BYTES,
    MAX_BATCH_SAMPLES,
    MAX_FUTURE_S,
    Sample,
    SamplesIngested,
)
from shared.events.notifications import NotificationDelivered, NotificationFailed
from shared.events.synthetic import CheckConfigured, CheckRemoved, CheckRunRecorded
from shared.events.watchdog import SELF_SOURCE, WATCHDOG_METRIC, WatchdogEvaluated

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_SAMPLES",
    "MAX_FUTURE_S",
    "SELF_SOURCE",
    "WATCHDOG_METRIC",
    "AlertAcknowledged",
    "AlertEscalated",
    "AlertEvent",
    "AlertFired",
    "AlertResolved",
    "ApiKeyCreated",
    "ApiKeyRevoked",
    "AuditRecorded",
    "ChannelCreated",
    "ChannelDeleted",
    "ChannelUpdated",
    "ChannelsProvisioned",
    "CheckConfigured",
    "CheckRemoved",
    "CheckRunRecorded",
    "Event",
    "IncidentAssigned",
    "IncidentNoteAdded",
    "IncidentOpened",
    "IncidentResolved",
    "IncidentSeverity",
    "IncidentSeverityChanged",
    "IncidentStatus",
    "IncidentStatusChanged",
    "MessageDeadLettered",
    "NotificationDelivered",
    "NotificationFailed",
    "RuleCreated",
    "RuleDeleted",
    "RuleUpdated",
    "RulesProvisioned",
    "Sample",
    "SamplesIngested",
    "SessionEnded",
    "SessionStarted",
    "Severity",
    "UndecodableEvent",
    "UserCreated",
    "UserRemoved",
    "UserUpdated",
    "WatchdogEvaluated",
    "decode_event",
    "derived_id",
    "new_id",
    "utcnow",
]
