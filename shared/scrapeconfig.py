"""Scrape targets in the config file: Prometheus/OpenMetrics text endpoints read on an
interval, with Prometheus's names for what it shares with Prometheus (``job_name``,
``scrape_interval`` is ``interval`` here, ``metric_relabel``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from shared.configtypes import Duration, Name, Strict
from shared.labels import LABEL_NAME_PATTERN, MAX_LABEL_VALUE_CHARS

MAX_SCRAPE_TARGETS = 1000
DEFAULT_BODY_LIMIT = 10 * 1024 * 1024
MAX_BODY_LIMIT = 100 * 1024 * 1024


class MetricRelabel(Strict):
    """Keep or drop samples by metric name, like Prometheus's ``metric_relabel_configs``
    on ``__name__``: the regex must match the whole name."""

    action: Literal["keep", "drop"]
    regex: str = Field(min_length=1, max_length=1000)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class ScrapeConfig(Strict):
    job_name: Name = Field(description="The ``job`` label of every sample scraped")
    targets: list[str] = Field(
        min_length=1, max_length=MAX_SCRAPE_TARGETS, description="URLs of /metrics endpoints"
    )
    interval_s: Duration = Field(default=30.0, alias="interval", ge=1)
    timeout_s: Duration = Field(default=10.0, alias="timeout", gt=0)
    labels: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="Labels added to every sample"
    )
    metric_relabel: list[MetricRelabel] = Field(
        default_factory=list, max_length=100, description="keep/drop by metric name, in order"
    )
    bearer_token: SecretStr | None = Field(
        default=None, description="Sent as Authorization: Bearer on every scrape"
    )
    body_size_limit: int = Field(
        default=DEFAULT_BODY_LIMIT,
        ge=1024,
        le=MAX_BODY_LIMIT,
        description="A larger answer fails the scrape (up = 0)",
    )
    enabled: bool = True

    @field_validator("targets")
    @classmethod
    def _urls(cls, targets: list[str]) -> list[str]:
        for index, url in enumerate(targets):
            if not re.match(r"^https?://[^/\s]+", url) or any(ch.isspace() for ch in url):
                raise ValueError(f"targets[{index}]: {url!r} is not an http(s) URL")
        if len(set(targets)) != len(targets):
            raise ValueError("targets: a URL is listed twice")
        return targets

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for name, value in labels.items():
            if not re.match(LABEL_NAME_PATTERN, name) or name in ("job", "instance"):
                raise ValueError(
                    f"labels[{name!r}]: must be a label name other than job and instance"
                )
            if len(value) > MAX_LABEL_VALUE_CHARS:
                raise ValueError(f"labels[{name!r}]: longer than {MAX_LABEL_VALUE_CHARS}")
        return labels

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> ScrapeConfig:
        if self.timeout_s >= self.interval_s:
            raise ValueError(
                f"timeout: {self.timeout_s:g} s must be shorter than the interval "
                f"({self.interval_s:g} s)"
            )
        return self

    def keeps(self, name: str) -> bool:
        """Whether ``metric_relabel`` keeps a metric of this name (steps apply in order)."""
        for step in self.metric_relabel:
            matched = re.fullmatch(step.regex, name) is not None
            if matched != (step.action == "keep"):
                return False
        return True
