"""Service level objectives: what share of events must be good, over which window.

An SLO counts events as good or bad. Availability counts them from two counters (``good``
or ``bad`` against ``total``, PromQL series selectors) or from a synthetic check's runs
(each run one event, good when up). Latency counts requests under a threshold: from a
histogram's buckets (``<metric>_bucket{le=threshold}`` against ``<metric>_count``), or
from latency samples (a check's ``synthetic_check_latency_ms``, or any gauge selector), a
sample being good when at or under the threshold. A percentile objective ("p99 under
300 ms") is the same thing said the other way: ``objective: 99`` with ``threshold: 300``.

The error budget is the share of events the objective allows to be bad; the burn rate
how fast it goes (1 spends exactly the budget over the window). Each problem names its
field, so the file says ``slos[0].sli.availability.total: ...``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import promql_parser
from pydantic import Field, field_validator, model_validator

from shared.configtypes import Name, Strict
from shared.ruleconfig import RuleConfig, field_error

# the Google SRE workbook's multi-window, multi-burn-rate alerts: (urgency, long window,
# short window, burn rate); both windows of a pair must burn at least that fast
BURN_ALERTS: tuple[tuple[str, str, str, float], ...] = (
    ("page", "1h", "5m", 14.4),
    ("page", "6h", "30m", 6.0),
    ("ticket", "1d", "2h", 3.0),
    ("ticket", "3d", "6h", 1.0),
)
BURN_WINDOWS_S: dict[str, int] = {
    "5m": 300,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "6h": 21600,
    "1d": 86400,
    "3d": 259200,
}
BURN_RATE_METRIC = "vigil_slo_burn_rate"  # {slo, window}
BURN_ALERT_METRIC = "vigil_slo_burn_alert"  # {slo, urgency}: 1 while a pair burns
BUDGET_METRIC = "vigil_slo_error_budget_remaining"  # {slo}: share of the window's budget left
CHECK_UP_METRIC = "synthetic_check_up"
CHECK_LATENCY_METRIC = "synthetic_check_latency_ms"
MAX_SLOS = 200
MAX_ROLLING_DAYS = 90
_ROLLING = re.compile(r"^(\d{1,3})d$")
WindowText = str


def check_selector(text: str) -> str:
    """A PromQL series selector (``http_requests_total{code!~"5.."}``), nothing more."""
    try:
        expr = promql_parser.parse(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a series selector: {exc}") from None
    if not isinstance(expr, promql_parser.VectorSelector):
        raise ValueError(f'{text!r} is not a series selector like http_requests_total{{job="api"}}')
    if not expr.name:
        raise ValueError(f"{text!r} needs a metric name")
    if expr.matchers.or_matchers:
        raise ValueError(f"{text!r}: 'or' between matchers is not supported here")
    return text.strip()


def window_seconds(window: str) -> int | None:
    """A rolling window's length; None for a calendar one (month, quarter)."""
    found = _ROLLING.match(window)
    return int(found.group(1)) * 86400 if found else None


class AvailabilitySli(Strict):
    """Good events over all events: two counters, or a synthetic check's runs."""

    good: str | None = Field(default=None, max_length=2000, description="Counter of good events")
    bad: str | None = Field(
        default=None, max_length=2000, description="Counter of bad events (instead of good)"
    )
    total: str | None = Field(default=None, max_length=2000, description="Counter of all events")
    check: Name | None = Field(default=None, description="A synthetic check: each run one event")

    @field_validator("good", "bad", "total")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        return None if value is None else check_selector(value)

    @model_validator(mode="after")
    def _one_source(self) -> AvailabilitySli:
        counters = self.good is not None or self.bad is not None or self.total is not None
        if self.check is not None:
            if counters:
                field = next(f for f in ("good", "bad", "total") if getattr(self, f) is not None)
                raise field_error(
                    "AvailabilitySli", (field,), "give counters or a check, not both", None
                )
            return self
        if self.total is None:
            raise field_error(
                "AvailabilitySli",
                ("total",),
                "give total with good or bad (counters), or check (a synthetic check)",
                None,
            )
        if (self.good is None) == (self.bad is None):
            raise field_error(
                "AvailabilitySli", ("good",), "give exactly one of good and bad", self.good
            )
        return self


class LatencySli(Strict):
    """The share of events at or under ``threshold``."""

    threshold: float = Field(
        gt=0,
        allow_inf_nan=False,
        description="The bound: a histogram bucket's le (in the histogram's unit), or "
        "milliseconds for a check",
    )
    histogram: str | None = Field(
        default=None,
        max_length=2000,
        description='A histogram\'s base selector: http_request_duration_seconds{job="api"}',
    )
    check: Name | None = Field(default=None, description="A synthetic check's latency (ms)")
    samples: str | None = Field(
        default=None, max_length=2000, description="A gauge of latencies: each sample one event"
    )

    @field_validator("histogram", "samples")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        return None if value is None else check_selector(value)

    @model_validator(mode="after")
    def _one_source(self) -> LatencySli:
        given = [f for f in ("histogram", "check", "samples") if getattr(self, f) is not None]
        if len(given) != 1:
            raise field_error(
                "LatencySli",
                (given[1] if given else "histogram",),
                "give exactly one of histogram, check and samples",
                None,
            )
        return self


class SliConfig(Strict):
    availability: AvailabilitySli | None = None
    latency: LatencySli | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> SliConfig:
        if (self.availability is None) == (self.latency is None):
            raise field_error(
                "SliConfig",
                ("availability",),
                "give exactly one of availability and latency",
                None,
            )
        return self

    @property
    def kind(self) -> Literal["availability", "latency"]:
        return "availability" if self.availability is not None else "latency"


class SloConfig(Strict):
    name: Name
    description: str = Field(default="", max_length=2000)
    service: str = Field(default="", max_length=200, description="Whose objective (for reports)")
    objective: float = Field(
        gt=0, lt=100, allow_inf_nan=False, description="Percent of events that must be good"
    )
    window: WindowText = Field(
        default="30d",
        description="Rolling (7d, 28d, 30d: 1d to 90d) or calendar (month, quarter), UTC",
    )
    sli: SliConfig
    exclude_maintenance: bool = Field(
        default=False,
        description="Leave the events inside maintenance windows matching the SLO's labels "
        "(slo, service, check) out of its figures",
    )
    alerts: bool = Field(default=True, description="Page and ticket on fast budget burn")

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        return check_window(value)

    @property
    def budget(self) -> float:
        """The share of events allowed to be bad."""
        return 1.0 - self.objective / 100.0

    @property
    def check(self) -> str | None:
        source = self.sli.availability or self.sli.latency
        return source.check if source is not None else None

    def labels(self) -> dict[str, str]:
        """What a maintenance window's matchers are matched against."""
        found = {"slo": self.name, "service": self.service}
        if self.check is not None:
            found["check"] = self.check
        return found


@dataclass(frozen=True)
class Events:
    """Where an SLO's events come from, as the metrics service reads them."""

    kind: Literal["counters", "runs", "samples"]
    good: str = ""  # counters: the good (or, with ``bad_counter``, the bad) events' selector
    total: str = ""
    bad_counter: bool = False
    threshold: float | None = None  # samples: good at or under it; runs: None (up == 1)


def events_of(slo: SloConfig) -> Events:
    """Every kind of SLI as one of three shapes of event."""
    if slo.sli.availability is not None:
        sli = slo.sli.availability
        if sli.check is not None:
            return Events("runs", total=f'{CHECK_UP_METRIC}{{check="{_quoted(sli.check)}"}}')
        assert sli.total is not None
        good = sli.good if sli.good is not None else sli.bad
        assert good is not None
        return Events("counters", good=good, total=sli.total, bad_counter=sli.bad is not None)
    latency = slo.sli.latency
    assert latency is not None
    if latency.histogram is not None:
        base = promql_parser.parse(latency.histogram)
        assert isinstance(base, promql_parser.VectorSelector)
        inner = _matchers_text(base)
        le = f'le="{_le(latency.threshold)}"'
        bucket = f"{base.name}_bucket{{{', '.join([*inner, le])}}}"
        count = f"{base.name}_count{{{', '.join(inner)}}}" if inner else f"{base.name}_count"
        return Events("counters", good=bucket, total=count)
    if latency.check is not None:
        selector = f'{CHECK_LATENCY_METRIC}{{check="{_quoted(latency.check)}"}}'
        return Events("samples", total=selector, threshold=latency.threshold)
    assert latency.samples is not None
    return Events("samples", total=latency.samples, threshold=latency.threshold)


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _le(value: float) -> str:
    """A bucket bound as Prometheus clients write it (0.3, 1, 2.5)."""
    return repr(float(value)).removesuffix(".0") if float(value).is_integer() else repr(value)


def _matchers_text(expr: Any) -> list[str]:
    ops = {
        "MatchOp.Equal": "=",
        "MatchOp.NotEqual": "!=",
        "MatchOp.Re": "=~",
        "MatchOp.NotRe": "!~",
    }
    return [
        f'{m.name}{ops[str(m.op)]}"{_quoted(m.value)}"'
        for m in expr.matchers.matchers
        if m.name != "__name__"
    ]


def burn_rules() -> list[RuleConfig]:
    """The rules that page and ticket on the burn-rate samples the metrics service sends:
    one series per SLO and urgency, so each SLO is an alert of its own, routed, silenced
    and inhibited like any other (``slo`` and ``service`` are among its labels)."""
    return [
        RuleConfig.model_validate(
            {
                "name": "SLOBurnRatePage",
                "metric": BURN_ALERT_METRIC,
                "labels": {"urgency": "page"},
                "critical": 1,
                "hysteresis": 0.5,
                "summary": "an SLO burns its error budget fast enough to page",
                "annotations": {
                    "summary": "SLO {{ labels.slo }} burns its error budget fast "
                    "(14.4x over 1h and 5m, or 6x over 6h and 30m)"
                },
            }
        ),
        RuleConfig.model_validate(
            {
                "name": "SLOBurnRateTicket",
                "metric": BURN_ALERT_METRIC,
                "labels": {"urgency": "ticket"},
                "warning": 1,
                "hysteresis": 0.5,
                "summary": "an SLO burns its error budget faster than it lasts",
                "annotations": {
                    "summary": "SLO {{ labels.slo }} burns its error budget "
                    "(3x over 1d and 2h, or 1x over 3d and 6h)"
                },
            }
        ),
    ]


def check_window(value: str) -> str:
    """A window's text as the file and the API take it: 7d, 28d, 30d, month, quarter."""
    value = value.strip()
    if value in ("month", "quarter"):
        return value
    days = window_seconds(value)
    if days is None or not 1 <= days // 86400 <= MAX_ROLLING_DAYS:
        raise ValueError(
            f"{value!r} is not a window: a rolling one like 7d, 28d or 30d (1d to "
            f"{MAX_ROLLING_DAYS}d), or month or quarter"
        )
    return value
