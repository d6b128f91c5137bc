"""Process settings, read once from the environment (VIGIL_*, plus NATS_URL and DATABASE_URL)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, ByteSize, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.config import parse_cidr

DAY_S = 24 * 3600.0
GIB = 1024**3
DEFAULT_METRICS_RETENTION_S = 15 * DAY_S
DEFAULT_LOGS_RETENTION_S = 7 * DAY_S
LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIL_", extra="ignore")

    nats_url: str | None = Field(
        default=None, validation_alias=AliasChoices("NATS_URL", "VIGIL_NATS_URL")
    )
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "VIGIL_DATABASE_URL")
    )
    data_dir: Path = Path(".vigil")
    config: Path | None = Field(default=None, description="Path of the vigil.yaml config file")
    host: str = "127.0.0.1"
    port: int = 8080
    heartbeat_interval_s: float = 2.0
    stream_replicas: int = 1
    log_level: str = "INFO"
    self_logs: bool = Field(
        default=False,
        description="Every service also stores its own log records (INFO and up) in the "
        "log store, as service <its name>, source self",
    )
    ingest_max_backlog: int = Field(
        default=200,
        description="Sample batches the metrics store or the alerts evaluator may be behind "
        "before POST /metrics answers 429; 0 accepts without limit",
    )
    # HTTP server bounds: a client that sends or reads too slowly cannot hold a connection
    http_header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A request's headers must arrive within this many seconds of its first "
        "byte (of the connection, for the first request), or the connection is closed",
    )
    http_body_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="A request's body must arrive within this many seconds of its headers, "
        "or the answer is 408 (a 5 MB sample batch needs 90 KB/s)",
    )
    http_keepalive_timeout_s: float = Field(
        default=5.0, gt=0, description="An idle kept-alive connection is closed after this"
    )
    http_write_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="A client that stops reading a response (a live stream too) is cut off "
        "after this many seconds",
    )
    http_max_connections: int = Field(
        default=0,
        ge=0,
        description="Open HTTP connections at most; 0: the open-file limit less a reserve. "
        "At the cap, a new connection closes the one idle longest",
    )

    # --- health and the watchdog ---
    watchdog_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often the gateway sends the watchdog sample and Vigil's own figures",
    )
    stall_after_s: float = Field(
        default=30.0,
        gt=0,
        description="A consumer with work waiting and no progress this long is stalled",
    )
    disk_low_percent: float = Field(
        default=10.0, ge=0, le=100, description="Health degraded below this much free disk"
    )
    disk_full_percent: float = Field(
        default=2.0,
        ge=0,
        le=100,
        description="Below this much free disk health fails and writes are refused at once",
    )

    # --- bounds: how long samples are kept, how large and old each stream may grow ---
    # An age of 0 keeps a stream's events forever. METRICS and DEADLETTERS drop their oldest
    # messages at a limit; the event-sourced streams refuse new writes instead (loudly)
    # rather than lose history. Byte sizes take units: 10GiB, 500MB.
    metrics_retention_s: float = Field(
        default=DEFAULT_METRICS_RETENTION_S,
        gt=0,
        description="Raw samples are kept this long in the metrics store (a block at a time); "
        "the gateway "
        "refuses timestamps older than this",
    )
    stream_metrics_max_age_s: float = Field(
        default=6 * 3600.0,
        ge=0,
        description="METRICS keeps this window only (the store owns retention): it must "
        "cover the alerts service's replay and the store's un-compacted blocks",
    )
    stream_metrics_max_bytes: ByteSize = Field(default=ByteSize(10 * GIB), gt=0)
    logs_retention_s: float = Field(
        default=DEFAULT_LOGS_RETENTION_S,
        gt=0,
        description="Log lines are kept this long unless their level has its own retention",
    )
    logs_retention_by_level: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict,
        description="Per-level retention in seconds, e.g. debug=86400,error=2592000; the "
        "gateway refuses lines older than the longest of all",
    )
    stream_logs_max_age_s: float = Field(
        default=DAY_S,
        ge=0,
        description="LOGS keeps this window only (the log store owns retention): what a "
        "rebuild of the log store can replay and what live tail can start from",
    )
    stream_logs_max_bytes: ByteSize = Field(default=ByteSize(10 * GIB), gt=0)
    stream_alerts_max_age_s: float = Field(default=0.0, ge=0)
    stream_alerts_max_bytes: ByteSize = Field(default=ByteSize(10 * GIB), gt=0)
    stream_incidents_max_age_s: float = Field(default=0.0, ge=0)
    stream_incidents_max_bytes: ByteSize = Field(default=ByteSize(5 * GIB), gt=0)
    stream_synthetic_max_age_s: float = Field(default=0.0, ge=0)
    stream_synthetic_max_bytes: ByteSize = Field(default=ByteSize(5 * GIB), gt=0)
    stream_notifications_max_age_s: float = Field(default=0.0, ge=0)
    stream_notifications_max_bytes: ByteSize = Field(default=ByteSize(5 * GIB), gt=0)
    stream_paging_max_age_s: float = Field(default=0.0, ge=0)
    stream_paging_max_bytes: ByteSize = Field(default=ByteSize(1 * GIB), gt=0)
    stream_silences_max_age_s: float = Field(default=0.0, ge=0)
    stream_silences_max_bytes: ByteSize = Field(default=ByteSize(1 * GIB), gt=0)
    stream_deadletters_max_age_s: float = Field(default=30 * DAY_S, ge=0)
    stream_deadletters_max_bytes: ByteSize = Field(default=ByteSize(2 * GIB), gt=0)
    stream_identity_max_age_s: float = Field(default=0.0, ge=0)
    stream_identity_max_bytes: ByteSize = Field(default=ByteSize(GIB), gt=0)
    stream_audit_max_age_s: float = Field(default=365 * DAY_S, ge=0)
    stream_audit_max_bytes: ByteSize = Field(default=ByteSize(GIB), gt=0)

    # --- identity: keys, sessions and request limits ---
    bootstrap_admin_key: SecretStr | None = Field(
        default=None,
        description="On a first start with no users, an admin API key with this value "
        "(at least 32 characters) is created",
    )
    agent_key_file: Path | None = Field(
        default=None,
        description="File holding the host agent's ingest key; the gateway makes sure an "
        "ingest key named vigil-agent with that value exists",
    )
    session_ttl_s: float = Field(
        default=12 * 3600.0, gt=0, description="A browser session ends this long after login"
    )
    api_rate_per_s: float = Field(
        default=200.0, gt=0, description="Requests per second each identity may make, sustained"
    )
    api_burst: int = Field(
        default=2000, ge=1, description="Requests an identity may make at once above its rate"
    )
    ingest_rate_per_s: float = Field(
        default=2000.0, gt=0, description="Sample batches per second each ingest identity may send"
    )

    # --- the outbound guard (checks and channels); added to the file's outbound: lists ---
    outbound_deny: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDR ranges checks and channels may not connect to, comma-separated",
    )
    outbound_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="CIDR ranges allowed within a wider denied range, comma-separated",
    )
    outbound_protect: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="More of Vigil's own listeners (host:port, comma-separated) that checks "
        "and channels may never reach, e.g. gateway:8080 where services run apart; the "
        "gateway port and the NATS servers are always included",
    )

    @field_validator("outbound_deny", "outbound_allow", mode="before")
    @classmethod
    def _cidr_list(cls, value: Any) -> list[str]:
        return [parse_cidr(item) for item in _items(value)]

    @field_validator("outbound_protect", mode="before")
    @classmethod
    def _endpoint_list(cls, value: Any) -> list[str]:
        items = _items(value)
        for item in items:
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{item!r} is not host:port")
        return items

    # --- the HTTP surface: who may reach the gateway, and how ---
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names the gateway answers to besides localhost, this machine's "
        "names, the bind host and IP addresses (comma-separated; `.example.com` takes its "
        "subdomains too; `*` turns the check off); any other Host header gets 400 "
        "(DNS rebinding)",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins (`https://ops.example.com`) whose pages may call the API; "
        "empty: no cross-origin grant at all",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or CIDRs of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty: those headers are ignored",
    )
    tls_cert: Path | None = Field(
        default=None, description="PEM certificate (chain) the gateway serves HTTPS with"
    )
    tls_key: Path | None = Field(default=None, description="PEM private key of tls_cert")

    @field_validator("allowed_hosts", "cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if host != "*" and (not host.strip(".") or any(c in host for c in "/ @")):
                raise ValueError(f"{host!r} is not a host name (example: vigil.example.com)")
        return [host.lower() for host in hosts]

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
                raise ValueError(
                    f"{origin!r} is not an origin: give scheme://host[:port], no path "
                    "(example: https://ops.example.com)"
                )
        return [origin.lower() for origin in origins]

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                message = f"{proxy!r} is not an address or CIDR (example: 10.0.0.0/8)"
                raise ValueError(message) from None
        return proxies

    @field_validator("logs_retention_by_level", mode="before")
    @classmethod
    def _level_retention(cls, value: Any) -> Any:
        return parse_level_retention(value)

    def log_retention_s(self, level: str) -> float:
        return self.logs_retention_by_level.get(level, self.logs_retention_s)

    @property
    def longest_log_retention_s(self) -> float:
        return max([self.logs_retention_s, *self.logs_retention_by_level.values()])

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key: give both (VIGIL_TLS_CERT, VIGIL_TLS_KEY)")
        return self

    @property
    def tls_enabled(self) -> bool:
        """The gateway serves HTTPS itself (session cookies are then Secure)."""
        return self.tls_cert is not None

    # --- a Prometheus-compatible store: every sample forwarded to it (remote-write 1.0),
    # and PromQL answered from it (services/metrics/remote) ---
    metrics_remote_write_url: str | None = Field(
        default=None,
        description="Forward every sample to this remote-write 1.0 endpoint (Prometheus, "
        "VictoriaMetrics, Mimir, Thanos Receive); unset forwards nothing",
    )
    metrics_remote_write_bearer_token: SecretStr | None = None
    metrics_remote_write_username: str | None = Field(default=None, description="Basic auth")
    metrics_remote_write_password: SecretStr | None = None
    metrics_remote_write_batch_samples: int = Field(
        default=5_000, ge=1, le=100_000, description="Samples per remote-write request at most"
    )
    metrics_remote_write_flush_interval_s: float = Field(
        default=1.0, gt=0, description="A partial batch is sent after waiting this long"
    )
    metrics_remote_write_timeout_s: float = Field(default=30.0, gt=0)
    metrics_remote_write_min_backoff_s: float = Field(default=0.1, gt=0)
    metrics_remote_write_max_backoff_s: float = Field(
        default=30.0,
        gt=0,
        description="A request the store failed (5xx, 429, unreachable) is retried without "
        "end, waiting twice as long each time up to this",
    )
    metrics_query_url: str | None = Field(
        default=None,
        description="Answer the Prometheus query API from this store (its base URL, the "
        "part before /api/v1) instead of Vigil's own",
    )
    metrics_query_bearer_token: SecretStr | None = None
    metrics_query_username: str | None = Field(default=None, description="Basic auth")
    metrics_query_password: SecretStr | None = None
    metrics_query_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("metrics_remote_write_url", "metrics_query_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.strip()

    @model_validator(mode="after")
    def _one_remote_auth(self) -> Settings:
        for prefix in ("metrics_remote_write", "metrics_query"):
            bearer = getattr(self, f"{prefix}_bearer_token")
            user = getattr(self, f"{prefix}_username")
            password = getattr(self, f"{prefix}_password")
            if bearer is not None and (user is not None or password is not None):
                raise ValueError(f"{prefix}_bearer_token and basic auth: give one, not both")
            if (user is None) != (password is None):
                raise ValueError(f"{prefix}_username and {prefix}_password: give both")
        if self.metrics_remote_write_min_backoff_s > self.metrics_remote_write_max_backoff_s:
            raise ValueError(
                "metrics_remote_write_min_backoff_s: must not exceed "
                "metrics_remote_write_max_backoff_s"
            )
        return self

    # --- NATS credentials (shared/natsauth.py) ---
    nats_user: str | None = Field(
        default=None,
        description="The NATS user this process connects as (vigil up sets it per service)",
    )
    nats_password: SecretStr | None = Field(
        default=None,
        description="That user's password; without it the password is read from "
        "<data dir>/nats-auth.json when that file exists",
    )

    def database_url_for(self, service: str) -> str:
        """One SQLite file per service by default; with DATABASE_URL every service shares
        the database but owns only tables prefixed with its name."""
        if self.database_url:
            return normalise_database_url(self.database_url)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.db').resolve()}"


def parse_level_retention(value: Any) -> dict[str, float]:
    """``debug=86400,error=2592000`` (or a mapping) as seconds per canonical level."""
    if isinstance(value, str):
        pairs: list[tuple[str, Any]] = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            name, sep, seconds = part.partition("=")
            if not sep:
                raise ValueError(f"{part!r} is not level=seconds (example: debug=86400)")
            pairs.append((name.strip(), seconds.strip()))
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        raise ValueError("must be level=seconds pairs, comma-separated")
    parsed: dict[str, float] = {}
    for name, seconds in pairs:
        level = str(name).lower()
        if level not in LOG_LEVELS:
            raise ValueError(f"{name!r} is not a level; one of {', '.join(LOG_LEVELS)}")
        try:
            number = float(seconds)
        except (TypeError, ValueError):
            raise ValueError(f"{level}: {seconds!r} is not a number of seconds") from None
        if not number > 0 or number == float("inf"):
            raise ValueError(f"{level}: retention must be a positive number of seconds")
        parsed[level] = number
    return parsed


def _items(value: Any) -> list[str]:
    """A list from the environment's ``a, b c`` form, or as given."""
    if isinstance(value, str):
        return [item for item in re.split(r"[,\s]+", value) if item]
    if isinstance(value, list | tuple):
        return [str(item).strip() for item in value if str(item).strip()]
    raise ValueError("must be a comma-separated list")


def normalise_database_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url
