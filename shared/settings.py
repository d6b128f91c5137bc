"""Process settings, read once from the environment (VIGIL_*, plus NATS_URL and DATABASE_URL)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    ingest_max_backlog: int = Field(
        default=200,
        description="Sample batches the metrics store or the alerts evaluator may be behind "
        "before POST /metrics answers 429; 0 accepts without limit",
    )

    def database_url_for(self, service: str) -> str:
        """One SQLite file per service by default; with DATABASE_URL every service shares
        the database but owns only tables prefixed with its name."""
        if self.database_url:
            return normalise_database_url(self.database_url)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.db').resolve()}"


def normalise_database_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url
