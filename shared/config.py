"""Configuration as code: one YAML file of rules, channels, checks, who gets paged
(contacts, schedules, escalation policies) and maintenance windows.

Errors name the file, the line and the field, e.g.
``vigil.yaml:7: rules[0].warning: Input should be a valid number``.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    model_validator,
)

from shared.channelconfig import (
    ALL_NOTIFIED_EVENTS,
    CHANNEL_KINDS,
    MAX_CHANNEL_TIMEOUT_S,
    ChannelBase,
    ChannelConfig,
    parse_channel,
)
from shared.configtypes import (
    Duration,
    Name,
    Strict,
)
from shared.maintenanceconfig import MaintenanceWindowConfig
from shared.pagingconfig import ContactConfig, EscalationPolicyConfig, ScheduleConfig
from shared.routingconfig import RouteConfig
from shared.ruleconfig import RuleConfig
from shared.scrapeconfig import ScrapeConfig
from shared.sloconfig import BURN_ALERT_METRIC, MAX_SLOS, SloConfig, burn_rules
from shared.suppressionconfig import FlappingConfig, InhibitRuleConfig

_Strict = Strict

__all__ = [
    "ALL_NOTIFIED_EVENTS",
    "MAX_CHANNEL_TIMEOUT_S",
    "ChannelBase",
    "ChannelConfig",
    "Duration",
    "RuleConfig",
    "parse_channel",
]


SAFE_METHODS = ("GET", "HEAD")


class CheckConfig(_Strict):
    name: Name
    type: Literal["http"] = "http"
    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"] = "GET"
    expected_status: int = Field(default=200, ge=100, le=599)
    timeout_s: Duration = Field(default=10.0, alias="timeout", gt=0)
    interval_s: Duration = Field(default=30.0, alias="interval", ge=0.5)
    failures_before_alert: int = Field(default=3, ge=1, le=100)
    enabled: bool = Field(default=True, description="A disabled check is kept but not run")
    allow_unsafe_method: bool = Field(
        default=False,
        description="A method other than GET or HEAD may change the target's state; "
        "an admin allows it explicitly",
    )

    @model_validator(mode="after")
    def _safe_method(self) -> CheckConfig:
        if self.method not in SAFE_METHODS and not self.allow_unsafe_method:
            raise ValueError(
                f"method: {self.method} may change the target's state; "
                "set allow_unsafe_method: true to allow it"
            )
        return self


class DeadmanConfig(_Strict):
    """A dead-man's switch: an outside URL pinged while the whole paging path works
    (the healthchecks.io / Dead Man's Snitch convention). Whoever watches it pages
    when the pings stop."""

    url: str = Field(pattern=r"^https?://", description="Pinged after each watchdog trip")
    interval_s: Duration = Field(
        default=60.0, alias="interval", ge=1, description="At most one ping per interval"
    )
    method: Literal["GET", "POST", "HEAD"] = "POST"
    timeout_s: Duration = Field(default=10.0, alias="timeout", gt=0)


def parse_cidr(value: Any) -> str:
    """A CIDR range (``10.0.0.0/8``, ``fd00::/8``) or one address, in canonical form."""
    if not isinstance(value, str):
        raise ValueError(f"must be a CIDR range like 10.0.0.0/8, not {value!r}")
    try:
        network = ipaddress.ip_network(value.strip())
    except ValueError:
        try:
            loose = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not a CIDR range like 10.0.0.0/8 or fd00::/8") from None
        raise ValueError(f"{value!r} has host bits set; did you mean {loose}?") from None
    return str(network)


Cidr = Annotated[str, BeforeValidator(parse_cidr)]


class OutboundConfig(_Strict):
    """Where synthetic checks and notification channels may connect. Link-local and cloud
    metadata addresses and Vigil's own ports are refused whatever these say; the rest is
    allowed unless denied here. Between a matching ``deny`` and ``allow`` range the more
    specific one decides (a tie goes to deny), so ``deny: [10.0.0.0/8]`` with
    ``allow: [10.1.2.0/24]`` keeps one subnet open, and ``deny: [0.0.0.0/0, ::/0]`` with an
    ``allow`` list allows only what it lists."""

    deny: list[Cidr] = Field(default_factory=list, description="CIDR ranges refused")
    allow: list[Cidr] = Field(
        default_factory=list, description="CIDR ranges allowed within a wider denied range"
    )


class IncidentPolicy(_Strict):
    auto_resolve: bool = Field(
        default=True, description="Resolve an alert-opened incident when its alert resolves"
    )


def _synthetic_down_rule() -> RuleConfig:
    return RuleConfig(
        name="SyntheticCheckDown",
        metric="synthetic_check_down",
        critical=1,
        hysteresis=0.5,
        summary="synthetic check failing repeatedly",
    )


def _self_rules() -> list[RuleConfig]:
    """Vigil watching itself, from the figures the gateway sends as samples: each fires
    through the same path and channels as any alert."""
    return [
        RuleConfig(
            name="VigilDiskLow",
            metric="vigil_data_dir_free_percent",
            direction="below",
            warning=10,
            critical=3,
            hysteresis=1,
            summary="little free space left under a Vigil data dir",
        ),
        RuleConfig(
            name="VigilConsumerStalled",
            metric="vigil_consumer_stalled_seconds",
            warning=30,
            critical=120,
            summary="a Vigil consumer has work waiting and makes no progress",
        ),
        RuleConfig.model_validate(
            {
                "name": "VigilConsumerBehind",
                "metric": "vigil_consumer_lag",
                "warning": 10_000,
                "for": "2m",
                "summary": "a Vigil consumer is falling behind",
            }
        ),
        RuleConfig(
            name="VigilChannelFailing",
            metric="vigil_channel_failing",
            warning=1,
            hysteresis=0.5,
            summary="a notification channel keeps failing",
        ),
        RuleConfig(
            name="VigilServiceRestarting",
            metric="vigil_service_restarts",
            warning=3,
            critical=10,
            hysteresis=0.5,
            summary="a Vigil service restarted repeatedly in the last 15 minutes",
        ),
        RuleConfig.model_validate(
            {
                "name": "VigilServiceDown",
                "metric": "vigil_service_down",
                "critical": 1,
                "hysteresis": 0.5,
                "for": "30s",
                "summary": "a Vigil service sends no heartbeat",
            }
        ),
        RuleConfig(
            name="VigilStreamFilling",
            metric="vigil_stream_used_percent",
            warning=80,
            critical=95,
            summary="an event stream is close to its byte limit",
        ),
    ]


def _always_rules() -> list[RuleConfig]:
    """Rules added to every configuration unless it watches their metrics itself."""
    return [_synthetic_down_rule(), *_self_rules()]


def _defaults() -> list[RuleConfig]:
    table: list[tuple[str, str, float, float]] = [
        ("HighCPU", "system_cpu_percent", 70, 90),
        ("HighMemory", "system_memory_percent", 80, 95),
        ("HighDisk", "system_disk_percent", 80, 90),
        ("HighProcessCount", "system_process_count", 1000, 2000),
        ("HighLoad", "system_load1", 2.0, 5.0),
        ("HighErrorRate", "app_error_rate_percent", 5, 10),
        ("SlowResponses", "app_response_time_ms", 500, 1000),
    ]
    rules = [RuleConfig(name=n, metric=m, warning=w, critical=c) for n, m, w, c in table]
    return rules + _always_rules()


DEFAULT_RULES: tuple[RuleConfig, ...] = tuple(_defaults())
# sections of items with unique names, each a kind the API can change too
NAMED_SECTIONS = (
    "rules",
    "channels",
    "checks",
    "contacts",
    "schedules",
    "escalation_policies",
    "maintenance",
)


class VigilConfig(_Strict):
    rules: list[RuleConfig] = Field(default_factory=lambda: list(DEFAULT_RULES))
    channels: list[ChannelConfig] = Field(default_factory=list)
    checks: list[CheckConfig] = Field(default_factory=list)
    incidents: IncidentPolicy = Field(default_factory=IncidentPolicy)
    deadman: DeadmanConfig | None = Field(
        default=None, description="Dead-man's switch pinged while the paging path works"
    )
    outbound: OutboundConfig = Field(
        default_factory=OutboundConfig,
        description="Where checks and channels may connect",
    )
    route: RouteConfig | None = Field(
        default=None,
        description="The routing tree; without it every event goes to every channel at once",
    )
    contacts: list[ContactConfig] = Field(
        default_factory=list, description="How each person is reached when paged"
    )
    schedules: list[ScheduleConfig] = Field(
        default_factory=list, description="On-call rotations: who is paged when"
    )
    escalation_policies: list[EscalationPolicyConfig] = Field(
        default_factory=list, description="Steps that page again until someone answers"
    )
    maintenance: list[MaintenanceWindowConfig] = Field(
        default_factory=list,
        description="Maintenance windows: one-off or recurring, matching alerts page nobody",
    )
    inhibit_rules: list[InhibitRuleConfig] = Field(
        default_factory=list,
        max_length=200,
        description="While an alert matching the source fires, matching targets page nobody",
    )
    flapping: FlappingConfig = Field(
        default_factory=FlappingConfig,
        description="How many fire/resolve changes within a window make a series flapping",
    )
    scrape_configs: list[ScrapeConfig] = Field(
        default_factory=list,
        max_length=200,
        description="Prometheus/OpenMetrics text endpoints scraped on an interval",
    )
    slos: list[SloConfig] = Field(
        default_factory=list,
        max_length=MAX_SLOS,
        description="Service level objectives: error budgets, burn-rate alerts, SLA reports",
    )

    @model_validator(mode="before")
    @classmethod
    def _can_always_alert(cls, data: Any) -> Any:
        """Failing checks and Vigil's own faults page even when the file lists its own
        rules: each built-in rule is added unless a rule already watches its metric."""
        rules = data.get("rules") if isinstance(data, dict) else None
        if isinstance(rules, list) and all(isinstance(r, dict) for r in rules):
            watched = {r.get("metric") for r in rules}
            added = [
                r.model_dump(by_alias=True) for r in _always_rules() if r.metric not in watched
            ]
            data = {**data, "rules": [*rules, *added]}
        return data

    @model_validator(mode="before")
    @classmethod
    def _slo_burn_rules(cls, data: Any) -> Any:
        """SLOs page and ticket through rules of their own, added like the built-in ones
        unless a rule already watches the burn-alert samples."""
        slos = data.get("slos") if isinstance(data, dict) else None
        if not isinstance(slos, list) or not any(
            isinstance(s, dict) and s.get("alerts", True) is not False for s in slos
        ):
            return data
        rules = data.get("rules")
        if rules is None:
            rules = [r.model_dump(by_alias=True) for r in DEFAULT_RULES]
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            return data
        if any(r.get("metric") == BURN_ALERT_METRIC for r in rules):
            return data
        added = [r.model_dump(by_alias=True) for r in burn_rules()]
        return {**data, "rules": [*rules, *added]}

    @model_validator(mode="after")
    def _unique_names(self) -> VigilConfig:
        for section in (*NAMED_SECTIONS, "slos"):
            seen: set[str] = set()
            for index, item in enumerate(getattr(self, section)):
                if item.name in seen:
                    raise ValueError(f"{section}[{index}].name: duplicate name {item.name!r}")
                seen.add(item.name)
        return self

    @model_validator(mode="after")
    def _unique_jobs(self) -> VigilConfig:
        seen: set[str] = set()
        for index, scrape in enumerate(self.scrape_configs):
            if scrape.job_name in seen:
                raise ValueError(
                    f"scrape_configs[{index}].job_name: duplicate job {scrape.job_name!r}"
                )
            seen.add(scrape.job_name)
        return self

    @model_validator(mode="after")
    def _policy_targets(self) -> VigilConfig:
        """A policy's ``user:`` and ``schedule:`` must name one of the file's contacts and
        schedules, but only when the file has that section at all: without it they are
        left to the running system, where the API may have made them. ``channel:`` is
        never checked here, as environment variables add channels no file lists."""
        known = {
            section: {item.name for item in getattr(self, section)}
            for section in ("contacts", "schedules")
            if section in self.model_fields_set
        }
        for p, policy in enumerate(self.escalation_policies):
            for s, step in enumerate(policy.steps):
                for n, target in enumerate(step.notify):
                    for field, section in (("user", "contacts"), ("schedule", "schedules")):
                        name = getattr(target, field)
                        if name is None or section not in known or name in known[section]:
                            continue
                        raise ValueError(
                            f"escalation_policies[{p}].steps[{s}].notify[{n}].{field}: "
                            f"{name!r} is not in {section} (the file lists "
                            f"{', '.join(sorted(known[section])) or 'none'})"
                        )
        return self


class ConfigError(ValueError):
    pass


def _line_index(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[(*path, key.value)] = key.start_mark.line + 1
            _line_index(value, (*path, key.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_index(item, (*path, index), out)


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def field_path(error: Any) -> tuple[Any, ...]:
    """Where a pydantic error points, in the file's terms: the tag a tagged union adds
    (``channels[0].slack.url``) is left out, and a bad tag points at ``type``."""
    loc: list[Any] = []
    raw = error["loc"]
    for index, part in enumerate(raw):
        if isinstance(part, str) and "[" in part:
            continue  # pydantic's name for a union member
        if index and isinstance(raw[index - 1], int) and part in CHANNEL_KINDS:
            continue
        loc.append(part)
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("type")
    return tuple(loc)


_NAMED_FIELD = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\]|\.[A-Za-z_]\w*)*): (.*)$", re.S)
_PART = re.compile(r"\[(\d+)\]|\.?([A-Za-z_]\w*)")


def _named_in_message(message: str) -> tuple[tuple[Any, ...], str]:
    """A whole-file check names its field at the start of its message
    (``rules[1].name: duplicate name``): that field, for its line, and the rest."""
    found = _NAMED_FIELD.match(message)
    if found is None:
        return (), message
    parts = _PART.findall(found.group(1))
    return tuple(int(i) if i else key for i, key in parts), found.group(2)


class _Loader(yaml.SafeLoader):
    """YAML as people write a schedule: ``start: 2026-01-05`` and ``handoff: 10:30`` stay
    the text they read as (YAML 1.1 would make a date and the base-60 number 630)."""

    yaml_implicit_resolvers = {
        first: [
            (tag, re.compile(r"^(?!.*:)" + pattern.pattern[1:], re.X))
            if tag.endswith((":int", ":float"))
            else (tag, pattern)
            for tag, pattern in resolvers
            if not tag.endswith(":timestamp")
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def parse_config(text: str, source: str = "vigil.yaml") -> VigilConfig:
    try:
        node = yaml.compose(text, Loader=_Loader)
        raw = yaml.load(text, Loader=_Loader)  # a SafeLoader: no Python objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}{where}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}:1: the file must be a mapping with rules, channels, checks")
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _line_index(node, (), lines)
    try:
        return VigilConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = field_path(error)
            message = error["msg"].removeprefix("Value error, ")
            if not loc:
                loc, message = _named_in_message(message)
            line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), 1)
            field = _dotted(loc) or "(top level)"
            problems.append(f"{source}:{line}: {field}: {message}")
        raise ConfigError("\n".join(problems)) from exc


def load_config(path: Path | None) -> VigilConfig:
    """The config at ``path``, or the built-in defaults when there is no file."""
    if path is None:
        return VigilConfig()
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_config(text, str(path))
