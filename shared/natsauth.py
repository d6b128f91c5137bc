"""Who may do what on NATS: one user per service, the host agent and the CLI.

The permission table below is the only place that says which subjects each user may
publish and subscribe to; the embedded server's config (``vigil up``) and the compose
deployment's ``deploy/nats-server.conf`` are both rendered from it. The rule: a service
publishes only its own events (and dead letters of its own consumers), sends only the
commands it needs and answers only the commands it owns; it reads only the streams it
consumes or replays. Nobody but the CLI user may purge, delete or reconfigure a stream
or delete a stored message: the event-sourced streams are the system's state.

Each user's replies come to an inbox of its own (``_INBOX.<user>.…``), so no user can
listen to another's answers; responders may answer a request once
(``allow_responses``) without a right to publish on inboxes at large.

Generated passwords live in ``<data dir>/nats-auth.json`` (mode 0600), never in argv,
logs or the environment: a service started by ``vigil up`` is told its user name
(``VIGIL_NATS_USER``) and reads its password from that file. Elsewhere
(compose) ``VIGIL_NATS_USER`` and ``VIGIL_NATS_PASSWORD`` give both.

This module is imported by the host agent too: it must not pull in pydantic.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared import subjects

if TYPE_CHECKING:
    from shared.settings import Settings

CREDENTIALS_FILE = "nats-auth.json"
CLI_USER = "cli"
AGENT_USER = "agent"
PASSWORD_BYTES = 32
INBOX = "_INBOX"

# Streams other than those in shared/streams.py that the table already names.
IDENTITY = "IDENTITY"
AUDIT = "AUDIT"
CONFIG = "CONFIG"
STREAM_NAMES_AHEAD = (IDENTITY, AUDIT, CONFIG)
DEADLETTERS = "DEADLETTERS"

# What only the CLI user may do: each of these destroys or rewrites stored history.
DESTRUCTIVE_API = (
    "$JS.API.STREAM.PURGE.>",
    "$JS.API.STREAM.DELETE.>",
    "$JS.API.STREAM.UPDATE.>",
    "$JS.API.STREAM.MSG.DELETE.>",
    "$JS.API.STREAM.RESTORE.>",
    "$JS.API.STREAM.SNAPSHOT.>",
    "$JS.API.ACCOUNT.PURGE.>",
    "$JS.API.META.>",
    "$JS.API.SERVER.>",
)


@dataclass(frozen=True)
class Grant:
    """What one user may do, in the system's words; ``permissions`` spells it in NATS's."""

    user: str
    events: tuple[str, ...] = ()  # subjects it appends to the log (its own events)
    sends: tuple[str, ...] = ()  # commands and queries it requests (core NATS)
    answers: tuple[str, ...] = ()  # commands and queries it serves
    reads: tuple[str, ...] = ()  # streams it consumes, replays or reads messages of
    durables: tuple[str, ...] = ()  # its durable consumers: it may dead-letter for them
    listens: tuple[str, ...] = ()  # core subjects it subscribes to besides its own
    inspects_all: bool = False  # stream and consumer state of every stream (health)
    beats: bool = True  # sends a heartbeat on vigil.heartbeat.<user>
    declares_streams: bool = True  # may create a missing stream (never change one)
    denied_events: tuple[str, ...] = ()
    admin: bool = False  # everything: tools run by the operator


def _commands(prefix: str) -> str:
    return f"{prefix}.*"


RULE_COMMANDS = "vigil.cmd.rules"  # .create | .update | .delete
CHANNEL_COMMANDS = "vigil.cmd.channels"  # .create | .update | .delete
IDENTITY_EVENTS = "identity"  # identity.users.<name>, identity.keys.<id>, identity.sessions.<id>
AUDIT_EVENTS = "audit"  # audit.events.<outcome>
CONFIG_RULES = "config.rules"  # config.rules.<rule token>
CONFIG_CHANNELS = "config.channels"  # config.channels.<channel token>
CONFIG_PROVISIONED = "config.provisioned"  # config.provisioned.<service>[.<kind>]
# the notifier's paging configuration: who, when on call, and how escalations go
PAGING_CONFIG = (subjects.CONFIG_CONTACTS, subjects.CONFIG_SCHEDULES, subjects.CONFIG_POLICIES)
PAGING_COMMANDS = (
    subjects.CONTACT_COMMANDS,
    subjects.SCHEDULE_COMMANDS,
    subjects.POLICY_COMMANDS,
)


def _provisioned(service: str, *kinds: str) -> tuple[str, ...]:
    return (
        f"{CONFIG_PROVISIONED}.{service}",
        *(f"{CONFIG_PROVISIONED}.{service}.{k}" for k in kinds),
    )


GRANTS: tuple[Grant, ...] = (
    Grant(
        "gateway",
        events=(
            subjects.samples("api"),  # POST /api/monitoring/metrics
            subjects.samples("vigil"),  # the watchdog and Vigil's own figures
            subjects.log_entries("api"),  # POST /api/monitoring/logs
            subjects.log_entries("otlp"),  # POST /v1/logs
            subjects.write_probe("gateway"),
            f"{IDENTITY_EVENTS}.>",
            f"{AUDIT_EVENTS}.>",
        ),
        sends=(
            _commands(subjects.ALERT_COMMANDS),
            _commands(subjects.INCIDENT_COMMANDS),
            _commands(subjects.CHECK_COMMANDS),
            _commands(RULE_COMMANDS),
            _commands(CHANNEL_COMMANDS),
            *(_commands(prefix) for prefix in PAGING_COMMANDS),
            _commands(subjects.SILENCE_COMMANDS),
            _commands(subjects.MAINTENANCE_COMMANDS),
            _commands(subjects.METRICS_QUERY),
            _commands(subjects.LOGS_QUERY),
            _commands(subjects.ALERT_QUERY),
            _commands(subjects.SELF_METRICS),  # GET /metrics/<service>
            f"{subjects.DEAD_LETTER_COMMANDS}.*.retry",  # to the consumer's owner
            "$JS.FC.LOGS.>",  # flow control of the live tail's ordered consumer
        ),
        reads=(
            "ALERTS",
            "INCIDENTS",
            "SYNTHETIC",
            "NOTIFICATIONS",
            "PAGING",
            "SILENCES",
            "DEADLETTERS",
            "LOGS",  # the live tail
            IDENTITY,
            AUDIT,
            CONFIG,
        ),
        durables=(
            "gateway-alerts",
            "gateway-incidents",
            "gateway-paging",
            "gateway-synthetic",
            "gateway-notifications",
            "gateway-deadletters",
        ),
        listens=(f"{subjects.HEARTBEATS}.*",),
        inspects_all=True,
    ),
    Grant(
        "metrics",
        events=(subjects.samples("slo"),),  # SLO burn rates, for the burn-rate alerts
        answers=(_commands(subjects.METRICS_QUERY), _commands(subjects.LOGS_QUERY)),
        reads=("METRICS", "LOGS", CONFIG),  # CONFIG: maintenance windows for SLOs
        durables=("metrics-store", "metrics-remote-write", "logs-store"),
    ),
    Grant(
        "alerts",
        events=(
            f"{subjects.ALERT_EVENTS}.>",
            f"{subjects.SILENCE_EVENTS}.>",
            f"{subjects.WATCHDOG}.>",
            f"{CONFIG_RULES}.>",
            f"{subjects.CONFIG_MAINTENANCE}.>",
            *_provisioned("alerts", "maintenance"),
        ),
        answers=(
            _commands(subjects.ALERT_COMMANDS),
            _commands(RULE_COMMANDS),
            _commands(subjects.SILENCE_COMMANDS),
            _commands(subjects.MAINTENANCE_COMMANDS),
            _commands(subjects.ALERT_QUERY),
        ),
        reads=("METRICS", "LOGS", "ALERTS", "SILENCES", CONFIG),
        durables=("alerts-evaluator", "alerts-logs"),
    ),
    Grant(
        "incidents",
        events=(f"{subjects.INCIDENT_EVENTS}.>",),
        answers=(_commands(subjects.INCIDENT_COMMANDS),),
        reads=("ALERTS", "INCIDENTS"),
        durables=("incidents-from-alerts",),
    ),
    Grant(
        "synthetic",
        events=(
            f"{subjects.CHECK_DEFINITIONS}.>",
            f"{subjects.CHECK_RESULTS}.>",
            subjects.samples("synthetic"),
            *_provisioned("synthetic"),
        ),
        answers=(_commands(subjects.CHECK_COMMANDS),),
        reads=("SYNTHETIC", CONFIG),
    ),
    Grant(
        "notifier",
        events=(
            f"{subjects.NOTIFICATION_EVENTS}.>",
            f"{subjects.PAGING_EVENTS}.>",
            f"{CONFIG_CHANNELS}.>",
            *(f"{prefix}.>" for prefix in PAGING_CONFIG),
            *_provisioned("notifier", "contacts", "schedules", "policies"),
        ),
        answers=(
            _commands(CHANNEL_COMMANDS),
            *(_commands(prefix) for prefix in PAGING_COMMANDS),
        ),
        reads=("METRICS", "ALERTS", "INCIDENTS", "WATCHDOG", "NOTIFICATIONS", "PAGING", CONFIG),
        durables=(
            "notifier-alerts",
            "notifier-incidents",
            "notifier-pages",
            "notifier-datadog",
            "notifier-watchdog",
        ),
    ),
    # ``vigil agent --nats-url``: host samples straight to METRICS, never a source
    # another part of Vigil speaks for
    Grant(
        AGENT_USER,
        events=(f"{subjects.SAMPLES}.>",),
        denied_events=(
            subjects.samples("api"),
            subjects.samples("vigil"),
            subjects.samples("synthetic"),
            subjects.samples("slo"),
        ),
        beats=False,
        declares_streams=False,
    ),
    # ``vigil rebuild``, ``vigil user|key``, ``vigil nats streams``: the operator's tools
    Grant(CLI_USER, admin=True, beats=False),
)

GRANT_BY_USER: dict[str, Grant] = {grant.user: grant for grant in GRANTS}
USERS: tuple[str, ...] = tuple(grant.user for grant in GRANTS)


def inbox_prefix(user: str) -> str:
    return f"{INBOX}.{user}"


def stream_names() -> tuple[str, ...]:
    """Every stream a user may create: those declared today and those the table names."""
    from shared.streams import ALL_STREAMS

    names = [spec.name for spec in ALL_STREAMS]
    names += [name for name in STREAM_NAMES_AHEAD if name not in names]
    for grant in GRANTS:
        names += [name for name in grant.reads if name not in names]
    return tuple(names)


def _registered_durables(service: str) -> list[tuple[str, str]]:
    """(durable, stream) pairs the durable-consumer registry gives ``service``.

    The registry is where each service's durables are declared; reading it here means a
    new durable gets its rights without a second edit.
    """
    try:
        registry = importlib.import_module("shared.durables")
    except ImportError:
        return []
    found = []
    for durable in getattr(registry, "DURABLES", ()):
        if getattr(durable, "service", None) == service:
            found.append((str(durable.name), str(durable.stream)))
    return found


def _stream_reading(stream: str) -> list[str]:
    api = "$JS.API"
    return [
        f"{api}.CONSUMER.CREATE.{stream}",  # an ephemeral consumer: a replay
        f"{api}.CONSUMER.CREATE.{stream}.>",  # a named consumer with its filter
        f"{api}.CONSUMER.DURABLE.CREATE.{stream}.*",
        f"{api}.CONSUMER.INFO.{stream}.*",
        f"{api}.CONSUMER.DELETE.{stream}.*",  # a durable created again at a checkpoint
        f"{api}.CONSUMER.MSG.NEXT.{stream}.*",
        f"{api}.CONSUMER.LIST.{stream}",
        f"{api}.CONSUMER.NAMES.{stream}",
        f"{api}.DIRECT.GET.{stream}",
        f"{api}.DIRECT.GET.{stream}.>",
        f"{api}.STREAM.MSG.GET.{stream}",
        f"$JS.ACK.{stream}.>",  # ack, nak, in progress
    ]


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    deny_publish: tuple[str, ...] = ()
    allow_responses: bool = False

    def as_config(self) -> dict[str, Any]:
        publish: dict[str, Any] = {"allow": list(self.publish)}
        if self.deny_publish:
            publish["deny"] = list(self.deny_publish)
        config: dict[str, Any] = {"publish": publish, "subscribe": {"allow": list(self.subscribe)}}
        if self.allow_responses:
            config["allow_responses"] = True
        return config


def permissions(grant: Grant) -> Permissions:
    """The least NATS permissions that let ``grant.user`` do its job."""
    if grant.admin:
        return Permissions(publish=(">",), subscribe=(">",))
    publish: list[str] = []
    subscribe: list[str] = [f"{inbox_prefix(grant.user)}.>"]

    def add(target: list[str], items: Iterable[str]) -> None:
        target.extend(item for item in items if item not in target)

    add(publish, grant.events)
    registered = _registered_durables(grant.user)
    durables = list(grant.durables) + [name for name, _ in registered]
    add(publish, (subjects.dead_letter(name) for name in durables))
    answers = list(grant.answers)
    if durables:
        # it re-drives its consumers' dead letters (shared.redrive): answers the command,
        # records each re-drive, counts the earlier ones
        answers.append(subjects.retry_dead_letter(grant.user))
        add(publish, (f"{subjects.dead_letter(name)}.retried.*" for name in durables))
        add(publish, [f"$JS.API.DIRECT.GET.{DEADLETTERS}", f"$JS.API.DIRECT.GET.{DEADLETTERS}.>"])
    add(publish, grant.sends)
    if grant.beats:  # a service: it also answers for its own figures (/metrics)
        answers.append(subjects.self_metrics(grant.user))
        add(publish, [subjects.heartbeat(grant.user)])
        add(publish, [subjects.log_entries("self")])  # its own log lines (VIGIL_SELF_LOGS)
        add(subscribe, [subjects.heartbeat(grant.user)])  # the container health check
    add(subscribe, answers)
    add(subscribe, grant.listens)
    if grant.declares_streams or grant.reads or grant.inspects_all:
        add(publish, ["$JS.API.STREAM.INFO.*"])
    if grant.declares_streams:
        add(publish, (f"$JS.API.STREAM.CREATE.{name}" for name in stream_names()))
    if grant.inspects_all:
        add(
            publish,
            [
                "$JS.API.INFO",
                "$JS.API.STREAM.NAMES",
                "$JS.API.STREAM.LIST",
                "$JS.API.CONSUMER.INFO.*.*",
                "$JS.API.CONSUMER.LIST.*",
                "$JS.API.CONSUMER.NAMES.*",
            ],
        )
    reads = list(grant.reads) + [stream for _, stream in registered]
    for stream in dict.fromkeys(reads):
        add(publish, _stream_reading(stream))
    return Permissions(
        publish=tuple(publish),
        subscribe=tuple(subscribe),
        deny_publish=(*grant.denied_events, *DESTRUCTIVE_API),
        allow_responses=bool(answers),
    )


# --- credentials ------------------------------------------------------------------


@dataclass(frozen=True)
class NatsCredentials:
    user: str
    password: str = field(repr=False)

    @property
    def inbox_prefix(self) -> str:
        return inbox_prefix(self.user)

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect``."""
        return {"user": self.user, "password": self.password, "inbox_prefix": self.inbox_prefix}


def credentials_path(data_dir: Path) -> Path:
    return Path(data_dir) / CREDENTIALS_FILE


def new_password() -> str:
    # a letter first: the compose config reads passwords from the environment, where a
    # value nats-server could take for a number would not match
    return "v" + secrets.token_urlsafe(PASSWORD_BYTES)


def read_passwords(data_dir: Path) -> dict[str, str] | None:
    """The generated passwords of a data dir, or None when it has none (auth off)."""
    path = credentials_path(data_dir)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    users = json.loads(raw).get("users", {})
    if not isinstance(users, dict):
        raise ValueError(f"{path}: 'users' must map user names to passwords")
    return {str(user): str(password) for user, password in users.items()}


def ensure_passwords(data_dir: Path) -> dict[str, str]:
    """The data dir's passwords, generating any user's that is missing (mode 0600).

    Existing passwords are kept, so a restart or an upgrade that adds a user changes
    nothing for the others.
    """
    existing = read_passwords(data_dir) or {}
    passwords = {user: existing.get(user) or new_password() for user in USERS}
    passwords.update({user: pw for user, pw in existing.items() if user not in passwords})
    if passwords != existing:
        _write_private(credentials_path(data_dir), json.dumps({"users": passwords}, indent=2))
    with contextlib.suppress(OSError):
        os.chmod(credentials_path(data_dir), 0o600)
    return passwords


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically; the file is 0600 from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def client_credentials(data_dir: Path, user: str) -> NatsCredentials | None:
    """``user``'s credentials from a data dir, or None when the data dir has none."""
    passwords = read_passwords(data_dir)
    if passwords is None:
        return None
    if user not in passwords:
        raise LookupError(f"{credentials_path(data_dir)} has no NATS user {user!r}")
    return NatsCredentials(user, passwords[user])


def env_credentials(env: Mapping[str, str], default_user: str) -> NatsCredentials | None:
    """Credentials from ``VIGIL_NATS_USER``/``VIGIL_NATS_PASSWORD``, or the data dir's
    file (``VIGIL_DATA_DIR``); for processes that read the environment by hand."""
    user = env.get("VIGIL_NATS_USER") or default_user
    password = env.get("VIGIL_NATS_PASSWORD")
    if password:
        return NatsCredentials(user, password)
    return client_credentials(Path(env.get("VIGIL_DATA_DIR", ".vigil")), user)


def credentials_for(settings: Settings, default_user: str) -> NatsCredentials | None:
    """The credentials a process connects with: the settings' user (else
    ``default_user``) with the settings' password, else that user's password from the
    data dir; None when neither is given (a server without auth, as in tests)."""
    user = settings.nats_user or default_user
    if settings.nats_password is not None:
        return NatsCredentials(user, settings.nats_password.get_secret_value())
    return client_credentials(settings.data_dir, user)


# --- server configuration -------------------------------------------------------


def _quote(value: str) -> str:
    return json.dumps(value)


def _render_list(items: Iterable[str], indent: str) -> str:
    inner = "".join(f"{indent}  {_quote(item)}\n" for item in items)
    return f"[\n{inner}{indent}]"


def render_users(passwords: Mapping[str, str]) -> str:
    """The ``authorization`` block of a nats-server config.

    ``passwords`` maps each user to its password as it goes in the config: a quoted
    string, or a ``$VARIABLE`` nats-server reads from its environment (compose).
    """
    lines = ["authorization {", "  users = ["]
    for grant in GRANTS:
        perms = permissions(grant)
        password = passwords[grant.user]
        rendered = password if password.startswith("$") else _quote(password)
        lines.append("    {")
        lines.append(f"      user: {_quote(grant.user)}")
        lines.append(f"      password: {rendered}")
        lines.append("      permissions: {")
        lines.append(f"        publish: {{allow: {_render_list(perms.publish, '        ')}")
        if perms.deny_publish:
            lines.append(f"          deny: {_render_list(perms.deny_publish, '          ')}")
        lines.append("        }")
        lines.append(f"        subscribe: {{allow: {_render_list(perms.subscribe, '        ')}}}")
        if perms.allow_responses:
            lines.append("        allow_responses: true")
        lines.append("      }")
        lines.append("    }")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def password_variable(user: str) -> str:
    return f"VIGIL_NATS_PASSWORD_{user.upper()}"


COMPOSE_CONFIG_HEADER = """\
# Generated by `vigil nats config` from shared/natsauth.py: edit the table there, not here
# (a test checks this file matches). Loaded by compose.yaml next to
# `-js -sd /data -m 8222`; each user's password comes from the environment
# (VIGIL_NATS_PASSWORD_<USER>, set in .env: `vigil nats passwords > .env`).
# A sample batch may be 5 MB (MAX_BATCH_BYTES) plus its envelope: allow 8 MB messages.
max_payload: 8MB
# Each Vigil stream reserves its byte limit (VIGIL_STREAM_*_MAX_BYTES, 37 GiB in all by
# default) against max_file_store, which otherwise is 75 % of the disk free at start.
jetstream {
  max_file_store: 1PB
}
"""


def compose_server_config() -> str:
    """deploy/nats-server.conf: the table, with passwords read from the environment."""
    variables = {user: f"${password_variable(user)}" for user in USERS}
    return COMPOSE_CONFIG_HEADER + render_users(variables)


def env_file_lines(passwords: Mapping[str, str] | None = None) -> list[str]:
    """``VIGIL_NATS_PASSWORD_<USER>=…`` for every user (fresh ones unless given)."""
    chosen = dict(passwords or {})
    return [f"{password_variable(user)}={chosen.get(user) or new_password()}" for user in USERS]


def embedded_authorization(data_dir: Path, *, create: bool = True) -> str | None:
    """The ``authorization`` block for the embedded server of a data dir.

    ``create``: generate the passwords when the data dir has none yet (``vigil up``);
    otherwise None then (a tool opening an older data dir's log).
    """
    passwords = ensure_passwords(data_dir) if create else read_passwords(data_dir)
    if passwords is None:
        return None
    return render_users(passwords)
