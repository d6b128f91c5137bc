"""The AsyncAPI 3 document of every event, command and query, generated from the contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from shared import commands, events, slocommands, subjects
from shared.streams import ALL_STREAMS

EventChannel = tuple[str, str, str, list[type[BaseModel]]]

EVENT_CHANNELS: list[EventChannel] = [
    (
        "samples",
        f"{subjects.SAMPLES}.{{source}}",
        "Sample batches, accepted whole: JSON samples, or a SampleBlock (an LZ4 block "
        "of a JSON head naming the series and binary columns of times, values and series)",
        [events.SamplesIngested, events.SampleBlock],
    ),
    (
        "logEntries",
        f"{subjects.LOG_ENTRIES}.{{source}}",
        "Log line batches, accepted whole",
        [events.LogsIngested],
    ),
    (
        "alertEvents",
        f"{subjects.ALERT_EVENTS}.{{aggregateId}}",
        "Alert aggregate events",
        [
            events.AlertFired,
            events.AlertEscalated,
            events.AlertAcknowledged,
            events.AlertResolved,
            events.AlertSuppressionChanged,
            events.AlertFlapping,
            events.AlertSettled,
        ],
    ),
    (
        "silenceEvents",
        f"{subjects.SILENCE_EVENTS}.{{aggregateId}}",
        "Silences in Alertmanager's shape (owned by alerts)",
        [events.SilenceCreated, events.SilenceUpdated, events.SilenceExpired],
    ),
    (
        "incidentEvents",
        f"{subjects.INCIDENT_EVENTS}.{{aggregateId}}",
        "Incident aggregate events",
        [
            events.IncidentOpened,
            events.IncidentStatusChanged,
            events.IncidentResolved,
            events.IncidentNoteAdded,
            events.IncidentAssigned,
            events.IncidentSeverityChanged,
        ],
    ),
    (
        "checkDefinitions",
        f"{subjects.CHECK_DEFINITIONS}.{{aggregateId}}",
        "Synthetic check definitions",
        [events.CheckConfigured, events.CheckRemoved],
    ),
    (
        "checkResults",
        f"{subjects.CHECK_RESULTS}.{{aggregateId}}",
        "Synthetic check runs",
        [events.CheckRunRecorded],
    ),
    (
        "notificationEvents",
        f"{subjects.NOTIFICATION_EVENTS}.{{aggregateId}}",
        "Delivery ledger",
        [events.NotificationQueued, events.NotificationDelivered, events.NotificationFailed],
    ),
    (
        "pagingEvents",
        f"{subjects.PAGING_EVENTS}.{{aggregateId}}",
        "Escalations through policies: step deadlines and the pages they sent",
        list(events.PAGING_EVENTS),
    ),
    (
        "deadLetters",
        f"{subjects.DEAD_LETTERS}.{{consumer}}",
        "Messages a consumer gave up on",
        [events.MessageDeadLettered],
    ),
    (
        "deadLetterRetries",
        f"{subjects.DEAD_LETTERS}.{{consumer}}.retried.{{deadLetterId}}",
        "Re-drives of one dead letter, by the service running its consumer",
        [events.DeadLetterRetried],
    ),
    (
        "configRules",
        f"{subjects.CONFIG_RULES}.{{nameToken}}",
        "Rules made through the API (owned by alerts)",
        [events.RuleCreated, events.RuleUpdated, events.RuleDeleted],
    ),
    (
        "configChannels",
        f"{subjects.CONFIG_CHANNELS}.{{nameToken}}",
        "Channels made through the API (owned by the notifier; secrets encrypted)",
        [events.ChannelCreated, events.ChannelUpdated, events.ChannelDeleted],
    ),
    (
        "configProvisioned",
        f"{subjects.CONFIG_PROVISIONED}.{{service}}",
        "The configuration file's items as each owner provisioned them",
        [events.RulesProvisioned, events.ChannelsProvisioned],
    ),
    (
        "configContacts",
        f"{subjects.CONFIG_CONTACTS}.{{nameToken}}",
        "People's contact methods set through the API (owned by the notifier)",
        [events.ContactCreated, events.ContactUpdated, events.ContactDeleted],
    ),
    (
        "configSchedules",
        f"{subjects.CONFIG_SCHEDULES}.{{nameToken}}",
        "On-call schedules made through the API (owned by the notifier)",
        [events.ScheduleCreated, events.ScheduleUpdated, events.ScheduleDeleted],
    ),
    (
        "configPolicies",
        f"{subjects.CONFIG_POLICIES}.{{nameToken}}",
        "Escalation policies made through the API (owned by the notifier)",
        [
            events.EscalationPolicyCreated,
            events.EscalationPolicyUpdated,
            events.EscalationPolicyDeleted,
        ],
    ),
    (
        "configMaintenance",
        f"{subjects.CONFIG_MAINTENANCE}.{{nameToken}}",
        "Maintenance windows made through the API (owned by alerts)",
        [
            events.MaintenanceWindowCreated,
            events.MaintenanceWindowUpdated,
            events.MaintenanceWindowDeleted,
        ],
    ),
    (
        "configProvisionedKinds",
        f"{subjects.CONFIG_PROVISIONED}.{{service}}.{{kind}}",
        "The configuration file's items of an owner's further kinds (contacts, schedules, "
        "policies, maintenance windows), each kind on its own subject",
        [
            events.ContactsProvisioned,
            events.SchedulesProvisioned,
            events.EscalationPoliciesProvisioned,
            events.MaintenanceWindowsProvisioned,
        ],
    ),
    (
        "watchdog",
        f"{subjects.WATCHDOG}.{{source}}",
        "Watchdog samples the alerts service evaluated; the notifier pings the dead-man's "
        "switch from them",
        [events.WatchdogEvaluated],
    ),
    (
        "identityUsers",
        f"{subjects.IDENTITY_USERS}.{{nameHash}}",
        "Users (passwords as argon2id hashes); the gateway writes and projects them",
        [events.UserCreated, events.UserUpdated, events.UserRemoved],
    ),
    (
        "identityKeys",
        f"{subjects.IDENTITY_KEYS}.{{keyId}}",
        "API keys (as SHA-256 hashes) and their revocation",
        [events.ApiKeyCreated, events.ApiKeyRevoked],
    ),
    (
        "identitySessions",
        f"{subjects.IDENTITY_SESSIONS}.{{sessionId}}",
        "Browser sessions (the cookie as a SHA-256 hash)",
        [events.SessionStarted, events.SessionEnded],
    ),
    (
        "audit",
        f"{subjects.AUDIT_EVENTS}.{{outcome}}",
        "Every write through the API, refused ones included",
        [events.AuditRecorded],
    ),
]

REQUEST_CHANNELS: list[tuple[str, type[BaseModel]]] = [
    (commands.ACKNOWLEDGE_ALERT, commands.AcknowledgeAlert),
    (commands.RESOLVE_ALERT, commands.ResolveAlert),
    (commands.OPEN_INCIDENT, commands.OpenIncident),
    (commands.CHANGE_INCIDENT_STATUS, commands.ChangeIncidentStatus),
    (commands.ADD_INCIDENT_NOTE, commands.AddIncidentNote),
    (commands.ASSIGN_INCIDENT, commands.AssignIncident),
    (commands.CHANGE_INCIDENT_SEVERITY, commands.ChangeIncidentSeverity),
    (commands.CONFIGURE_CHECK, commands.ConfigureCheck),
    (commands.REMOVE_CHECK, commands.RemoveCheck),
    (commands.RUN_CHECK, commands.RunCheck),
    (commands.CREATE_RULE, commands.CreateRule),
    (commands.UPDATE_RULE, commands.UpdateRule),
    (commands.DELETE_RULE, commands.DeleteRule),
    (commands.CREATE_CHANNEL, commands.CreateChannel),
    (commands.UPDATE_CHANNEL, commands.UpdateChannel),
    (commands.DELETE_CHANNEL, commands.DeleteChannel),
    (commands.REENCRYPT_CHANNELS, commands.ReencryptChannels),
    (commands.CREATE_CONTACT, commands.CreateContact),
    (commands.UPDATE_CONTACT, commands.UpdateContact),
    (commands.DELETE_CONTACT, commands.DeleteContact),
    (commands.CREATE_SCHEDULE, commands.CreateSchedule),
    (commands.UPDATE_SCHEDULE, commands.UpdateSchedule),
    (commands.DELETE_SCHEDULE, commands.DeleteSchedule),
    (commands.CREATE_POLICY, commands.CreatePolicy),
    (commands.UPDATE_POLICY, commands.UpdatePolicy),
    (commands.DELETE_POLICY, commands.DeletePolicy),
    (commands.TEST_CHANNEL, commands.SendChannelTest),
    (commands.CREATE_SILENCE, commands.CreateSilence),
    (commands.EXPIRE_SILENCE, commands.ExpireSilence),
    (commands.CREATE_MAINTENANCE, commands.CreateMaintenanceWindow),
    (commands.UPDATE_MAINTENANCE, commands.UpdateMaintenanceWindow),
    (commands.DELETE_MAINTENANCE, commands.DeleteMaintenanceWindow),
    (f"{subjects.DEAD_LETTER_COMMANDS}.{{service}}.retry", commands.RetryDeadLetter),
    (commands.QUERY_SAMPLES, commands.QuerySamples),
    (commands.AGGREGATE_SAMPLES, commands.AggregateSamples),
    (commands.PROM_INSTANT_QUERY, commands.PromInstantQuery),
    (commands.PROM_RANGE_QUERY, commands.PromRangeQuery),
    (commands.PROM_SERIES, commands.PromSeriesQuery),
    (commands.PROM_LABELS, commands.PromLabelsQuery),
    (commands.PROM_LABEL_VALUES, commands.PromLabelValuesQuery),
    (commands.SEARCH_LOGS, commands.SearchLogs),
    (commands.LOG_HISTOGRAM, commands.LogHistogram),
    (slocommands.QUERY_SLO, slocommands.SloQuery),
    (slocommands.QUERY_SLA_REPORT, slocommands.SlaReportQuery),
]


def _schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas[name] = definition
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _params(address: str) -> dict[str, Any]:
    names = [part[1:-1] for part in address.split(".") if part.startswith("{")]
    return {name: {"description": f"{name} token"} for name in names}


def build_asyncapi() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    streams = {spec.name: spec for spec in ALL_STREAMS}
    for key, address, description, models in EVENT_CHANNELS:
        stream = next(
            name
            for name, spec in streams.items()
            if any(address.startswith(s[:-1]) for s in spec.subjects)
        )
        refs = {}
        for model in models:
            messages[model.__name__] = {
                "name": model.__name__,
                "title": model.__name__,
                "summary": (model.__doc__ or model.__name__).strip().splitlines()[0],
                "contentType": "application/json",
                "headers": {
                    "type": "object",
                    "properties": {"Nats-Msg-Id": {"type": "string", "description": "event id"}},
                },
                "payload": _schema(model, schemas),
            }
            refs[model.__name__] = {"$ref": f"#/components/messages/{model.__name__}"}
        channels[key] = {
            "address": address,
            "description": f"{description} (JetStream stream {stream})",
            "parameters": _params(address),
            "messages": refs,
        }
        operations[f"publish_{key}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
        }
    for address, model in REQUEST_CHANNELS:
        key = address.replace(".", "_").replace("{", "").replace("}", "")
        messages[model.__name__] = {
            "name": model.__name__,
            "contentType": "application/json",
            "payload": _schema(model, schemas),
        }
        channels[key] = {
            "address": address,
            "description": "request/reply; replies {result} or {error: {kind, message, field}}",
            **({"parameters": _params(address)} if "{" in address else {}),
            "messages": {model.__name__: {"$ref": f"#/components/messages/{model.__name__}"}},
        }
        operations[key] = {"action": "receive", "channel": {"$ref": f"#/channels/{key}"}}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Vigil events",
            "version": "1.0.0",
            "description": "Every event on Vigil's JetStream log and every command on the bus.",
        },
        "defaultContentType": "application/json",
        "servers": {"nats": {"host": "127.0.0.1:4222", "protocol": "nats"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def write_asyncapi(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        orjson.dumps(build_asyncapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
