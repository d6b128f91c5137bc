"""Every NATS subject Vigil uses, in one place.

Events live on JetStream under per-aggregate subjects so a writer can demand the
aggregate's last sequence (optimistic concurrency). Commands and queries are core
NATS request/reply; heartbeats are fire-and-forget.
"""

from __future__ import annotations

import hashlib

# --- events (JetStream) ---------------------------------------------------
SAMPLES = "metrics.samples"  # metrics.samples.<source>
LOG_ENTRIES = "logs.entries"  # logs.entries.<source>
ALERT_EVENTS = "alerts.events"  # alerts.events.<alert id>
INCIDENT_EVENTS = "incidents.events"  # incidents.events.<incident id>
CHECK_DEFINITIONS = "synthetic.checks"  # synthetic.checks.<check id>
CHECK_RESULTS = "synthetic.results"  # synthetic.results.<check id>
NOTIFICATION_EVENTS = "notifications.events"  # notifications.events.<delivery id>
PAGING_EVENTS = "paging.events"  # paging.events.<escalation id>
SILENCE_EVENTS = "silences.events"  # silences.events.<silence id>
DEAD_LETTERS = "deadletter"  # deadletter.<consumer>
IDENTITY_USERS = "identity.users"  # identity.users.<hash of the user name>
IDENTITY_KEYS = "identity.keys"  # identity.keys.<key id>
IDENTITY_SESSIONS = "identity.sessions"  # identity.sessions.<session id>
AUDIT_EVENTS = "audit.events"  # audit.events.<outcome>
CONFIG = "config"  # the CONFIG stream: config.rules.<token>, config.channels.<token>, ...
CONFIG_RULES = "config.rules"  # config.rules.<rule token>
CONFIG_CHANNELS = "config.channels"  # config.channels.<channel token>
CONFIG_CONTACTS = "config.contacts"  # config.contacts.<user token>
CONFIG_SCHEDULES = "config.schedules"  # config.schedules.<schedule token>
CONFIG_POLICIES = "config.policies"  # config.policies.<escalation policy token>
CONFIG_MAINTENANCE = "config.maintenance"  # config.maintenance.<window token>
# the file's items: config.provisioned.<service> for a service's first kind (rules,
# channels), config.provisioned.<service>.<kind> for each further kind of the same owner
CONFIG_PROVISIONED = "config.provisioned"

# --- commands and queries (request/reply) ---------------------------------
ALERT_COMMANDS = "vigil.cmd.alerts"  # .acknowledge | .resolve
INCIDENT_COMMANDS = "vigil.cmd.incidents"  # .open | .status | .note | .assign | .severity
CHECK_COMMANDS = "vigil.cmd.synthetic"  # .configure | .remove | .run
RULE_COMMANDS = "vigil.cmd.rules"  # .create | .update | .delete
CONTACT_COMMANDS = "vigil.cmd.contacts"  # .create | .update | .delete
SCHEDULE_COMMANDS = "vigil.cmd.schedules"  # .create | .update | .delete
POLICY_COMMANDS = "vigil.cmd.policies"  # .create | .update | .delete
MAINTENANCE_COMMANDS = "vigil.cmd.maintenance"  # .create | .update | .delete
SILENCE_COMMANDS = "vigil.cmd.silences"  # .create | .expire
CHANNEL_COMMANDS = "vigil.cmd.channels"  # .create | .update | .delete | .reencrypt | .test
DEAD_LETTER_COMMANDS = "vigil.cmd.deadletters"  # .<service>.retry: each answers its own
# .samples | .stats | .aggregate | .promql_instant | .promql_range | .series | .labels
# | .label_values
METRICS_QUERY = "vigil.query.metrics"
ALERT_QUERY = "vigil.query.alerts"  # .explain
LOGS_QUERY = "vigil.query.logs"  # .search | .histogram (answered by the metrics service)
# each service's own figures in Prometheus text: vigil.query.selfmetrics.<service>
SELF_METRICS = "vigil.query.selfmetrics"

# --- liveness ---------------------------------------------------------------
HEARTBEATS = "vigil.heartbeat"  # vigil.heartbeat.<service>

# --- self-checks (WATCHDOG stream) ------------------------------------------
WATCHDOG = "vigil.watchdog"  # vigil.watchdog.<source>: WatchdogEvaluated
WRITE_PROBES = "vigil.probe"  # vigil.probe.<service>: a tiny write that proves the log takes writes


def token(value: str) -> str:
    """Make a value safe as one subject token (no dots, spaces or wildcards)."""
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in value)
    return cleaned or "_"


def samples(source: str) -> str:
    return f"{SAMPLES}.{token(source)}"


def log_entries(source: str) -> str:
    return f"{LOG_ENTRIES}.{token(source)}"


def alert(alert_id: str) -> str:
    return f"{ALERT_EVENTS}.{alert_id}"


def silence(silence_id: str) -> str:
    return f"{SILENCE_EVENTS}.{silence_id}"


def incident(incident_id: str) -> str:
    return f"{INCIDENT_EVENTS}.{incident_id}"


def check_definition(check_id: str) -> str:
    return f"{CHECK_DEFINITIONS}.{check_id}"


def check_result(check_id: str) -> str:
    return f"{CHECK_RESULTS}.{check_id}"


def notification(delivery_id: str) -> str:
    return f"{NOTIFICATION_EVENTS}.{delivery_id}"


def escalation(escalation_id: str) -> str:
    return f"{PAGING_EVENTS}.{escalation_id}"


def dead_letter(consumer: str) -> str:
    return f"{DEAD_LETTERS}.{token(consumer)}"


def dead_letter_retries(consumer: str, dead_letter_id: str) -> str:
    """Where the re-drives of one dead letter are kept: their count is the subject's length."""
    return f"{dead_letter(consumer)}.retried.{token(dead_letter_id)}"


def name_token(name: str) -> str:
    """A short hash of a free-form name (spaces, dots, any case) as one subject token."""
    return hashlib.sha256(name.encode()).hexdigest()[:20]


def identity_user(name: str) -> str:
    return f"{IDENTITY_USERS}.{name_token(name)}"


def identity_key(key_id: str) -> str:
    return f"{IDENTITY_KEYS}.{token(key_id)}"


def identity_session(session_id: str) -> str:
    return f"{IDENTITY_SESSIONS}.{token(session_id)}"


def audit(outcome: str) -> str:
    return f"{AUDIT_EVENTS}.{token(outcome)}"


def config_rule(name: str) -> str:
    return f"{CONFIG_RULES}.{name_token(name)}"


def config_channel(name: str) -> str:
    return f"{CONFIG_CHANNELS}.{name_token(name)}"


def config_provisioned(service: str, kind: str = "") -> str:
    """Where an owner provisions the file's items of one kind. A further kind of the same
    owner gets a token of its own after the service's: reading one exact subject never
    returns another kind's provisioning."""
    base = f"{CONFIG_PROVISIONED}.{token(service)}"
    return f"{base}.{token(kind)}" if kind else base


def command(prefix: str, name: str) -> str:
    return f"{prefix}.{name}"


def retry_dead_letter(service: str) -> str:
    """The command that re-drives a dead letter of one of ``service``'s consumers."""
    return f"{DEAD_LETTER_COMMANDS}.{token(service)}.retry"


def heartbeat(service: str) -> str:
    return f"{HEARTBEATS}.{service}"


def watchdog(source: str) -> str:
    return f"{WATCHDOG}.{token(source)}"


def write_probe(service: str) -> str:
    return f"{WRITE_PROBES}.{token(service)}"


def self_metrics(service: str) -> str:
    return f"{SELF_METRICS}.{token(service)}"
