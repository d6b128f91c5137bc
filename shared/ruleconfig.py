"""What a rule may say: which series (metric, labels, matchers), what value of them (the
sample, a window function, a ratio of two counters, or their absence), the thresholds (per
label set too), and what the alert carries (annotations, static labels).

A rule watches one of four things, and the fields of the others are refused:
thresholds on a value (``warning``/``critical``, optionally over a ``function`` and
``window`` or a ``ratio``), the series' absence (``absent_for``), or the count of
matching log lines over a ``window`` (``logs``). Every problem names
its field (``window``, ``overrides[1].critical``, ``annotations.summary``), so the file and
the API say ``rules[2].window: ...`` and ``window: ...``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from shared.configtypes import Duration, Name, Strict, Threshold, compiles
from shared.errors import InvalidInput
from shared.labels import LABEL_NAME_PATTERN, MAX_LABEL_NAME_CHARS, MAX_LABEL_VALUE_CHARS
from shared.logquery import parse_query
from shared.matchers import parse_matcher
from shared.suppressionconfig import FlappingConfig

WindowFunction = Literal[
    "avg",
    "min",
    "max",
    "sum",
    "count",
    "p50",
    "p90",
    "p95",
    "p99",
    "rate",
    "increase",
    "delta",
    "last",
]
WINDOW_FUNCTIONS: tuple[str, ...] = WindowFunction.__args__  # type: ignore[attr-defined]
MAX_WINDOW_S = 86400.0
MAX_ABSENT_FOR_S = 7 * 86400.0
# labels routing, silences and inhibition give every alert: a rule cannot set them
RESERVED_LABELS = frozenset({"alertname", "rule", "severity", "metric", "kind"})
# the ``metric`` of a log rule's alerts: what routes and silences can match them by
LOG_RULE_METRIC = "log_lines"
MAX_LOG_QUERY_CHARS = 2000


def _matcher(text: str) -> str:
    parse_matcher(text)  # raises ValueError saying what is wrong
    return text


MatcherText = Annotated[str, Field(max_length=1000), AfterValidator(_matcher)]
LabelName = Annotated[
    str, Field(min_length=1, max_length=MAX_LABEL_NAME_CHARS, pattern=LABEL_NAME_PATTERN)
]
LabelValue = Annotated[str, Field(max_length=MAX_LABEL_VALUE_CHARS)]
AnnotationName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z_]\w*$")]
Template = Annotated[str, Field(max_length=4000), AfterValidator(compiles)]
MetricName = Annotated[str, Field(min_length=1, max_length=200)]
LogLevel = Literal["trace", "debug", "info", "warn", "error", "fatal"]


def _log_query(text: str) -> str:
    try:
        parse_query(text)
    except InvalidInput as exc:  # its message names q already; pydantic names the field
        raise ValueError(exc.message.removeprefix("q: ")) from None
    return text


LogQueryText = Annotated[str, Field(max_length=MAX_LOG_QUERY_CHARS), AfterValidator(_log_query)]


def field_error(
    title: str, loc: tuple[str | int, ...], message: str, value: Any
) -> ValidationError:
    """A cross-field problem reported at the field it is about, not at the whole rule."""
    return ValidationError.from_exception_data(
        title,
        [InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=value)],
    )


def _ordered(
    title: str,
    direction: str,
    warning: float | None,
    critical: float | None,
    where: tuple[str | int, ...] = (),
) -> None:
    if warning is None or critical is None:
        return
    wrong = critical < warning if direction == "above" else critical > warning
    if wrong:
        side = "at or above" if direction == "above" else "at or below"
        raise field_error(title, (*where, "critical"), f"critical must be {side} warning", critical)


class RuleOverride(Strict):
    """Other thresholds for the series its matchers select; the first matching one wins."""

    matchers: list[MatcherText] = Field(
        min_length=1, max_length=20, description='Alertmanager matchers: mount="/var"'
    )
    warning: Threshold | None = Field(default=None, description="Replaces the rule's warning")
    critical: Threshold | None = Field(default=None, description="Replaces the rule's critical")
    hysteresis: Threshold | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _some_threshold(self) -> RuleOverride:
        if self.warning is None and self.critical is None:
            raise field_error(
                "RuleOverride",
                ("warning",),
                "an override needs a warning or a critical threshold",
                None,
            )
        return self


class RatioConfig(Strict):
    """``increase(numerator) / increase(denominator)`` over ``over``, joined on equal labels."""

    numerator: MetricName = Field(description="The counter of failures, e.g. http_errors_total")
    denominator: MetricName = Field(description="The counter of all, e.g. http_requests_total")
    over: Duration = Field(gt=0, le=MAX_WINDOW_S, description="The window both increase over")
    on: list[LabelName] | None = Field(
        default=None,
        max_length=20,
        description="Join on these labels only (the counters of each group summed); "
        "left out: on every label",
    )
    scale: float = Field(
        default=1.0, gt=0, allow_inf_nan=False, description="100 gives a percentage"
    )

    @model_validator(mode="after")
    def _two_metrics(self) -> RatioConfig:
        if self.numerator == self.denominator:
            raise field_error(
                "RatioConfig",
                ("denominator",),
                "the denominator must be another metric than the numerator",
                self.denominator,
            )
        return self


class LogSelector(Strict):
    """Which log lines a log rule counts: every field given must hold for a line."""

    level: list[LogLevel] = Field(
        default_factory=list, max_length=6, description="Any of these levels; empty: all"
    )
    service: LabelValue = Field(default="", description="Only this service's lines")
    labels: dict[LabelName, LabelValue] = Field(
        default_factory=dict, max_length=64, description="Exact label matches, all of them"
    )
    q: LogQueryText = Field(
        default="",
        description='Text as in a log search: words, "phrases", AND, OR, NOT, -word',
    )
    by: list[LabelName] = Field(
        default_factory=list,
        max_length=20,
        description="Count each value of these labels apart (one alert per host: [host]); "
        "service and level name the line's own",
    )


class RuleConfig(Strict):
    name: Name
    metric: str = Field(
        default="",
        max_length=200,
        description="Sample name to watch; a ratio rule's is its numerator",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, max_length=64, description="Exact-match label filters"
    )
    matchers: list[MatcherText] = Field(
        default_factory=list,
        max_length=20,
        description='Alertmanager matchers the series must all meet: mount=~"/var.*", env!="dev"',
    )
    direction: Literal["above", "below"] = Field(
        default="above", description="'below' fires when the value drops to the threshold"
    )
    warning: Threshold | None = Field(default=None, description="Fires warning at or beyond")
    critical: Threshold | None = Field(
        default=None, description="Escalates to critical at or beyond"
    )
    for_s: Duration = Field(
        default=0.0, alias="for", le=7 * 86400, description="How long the level must hold"
    )
    hysteresis: Threshold | None = Field(
        default=None,
        ge=0,
        description="How far back past the warning threshold the value must go to resolve; "
        "default 5% of the threshold",
    )
    overrides: list[RuleOverride] = Field(
        default_factory=list,
        max_length=50,
        description="Thresholds for some label sets (first match wins), e.g. a lower disk "
        'threshold for mount="/var"',
    )
    function: WindowFunction | None = Field(
        default=None,
        description="Judge this function of the series over `window` instead of each sample",
    )
    window: Duration | None = Field(
        default=None, gt=0, le=MAX_WINDOW_S, description="The window of `function`: 5m"
    )
    ratio: RatioConfig | None = Field(
        default=None, description="Judge increase(numerator) / increase(denominator)"
    )
    absent_for: Duration | None = Field(
        default=None,
        gt=0,
        le=MAX_ABSENT_FOR_S,
        description="Fire 'no data' when a series seen before is not seen for this long",
    )
    absent_by: list[LabelName] | None = Field(
        default=None,
        max_length=20,
        description="What must keep reporting: left out, every series; [host], each host; "
        "[], any series of the selector",
    )
    severity: Literal["warning", "critical"] | None = Field(
        default=None, description="The severity of an absence alert (default critical)"
    )
    summary: str = Field(default="", max_length=1000)
    annotations: dict[AnnotationName, Template] = Field(
        default_factory=dict,
        max_length=20,
        description="Templates rendered with labels and value when the alert fires: "
        "summary, description, runbook_url, dashboard_url, ...",
    )
    set_labels: dict[LabelName, LabelValue] = Field(
        default_factory=dict,
        max_length=20,
        description="Static labels added to the alert's (team, owner) for routing",
    )
    logs: LogSelector | None = Field(
        default=None,
        description="Count the log lines this selects over `window` and judge the count "
        "by warning/critical",
    )
    flapping: FlappingConfig | None = Field(
        default=None,
        description="This rule's flapping limit in place of the top-level one: "
        "{enabled: false} never marks its series flapping; fields left out take their "
        "defaults (6 changes, 10m), not the top-level values",
    )

    @model_validator(mode="before")
    @classmethod
    def _ratio_metric(cls, data: Any) -> Any:
        """A ratio rule watches its numerator: that is its ``metric`` unless one is given;
        a log rule's is ``log_lines``."""
        if isinstance(data, dict) and not data.get("metric") and data.get("logs") is not None:
            return {**data, "metric": LOG_RULE_METRIC}
        if isinstance(data, dict) and not data.get("metric"):
            ratio = data.get("ratio")
            numerator = ratio.get("numerator") if isinstance(ratio, dict) else None
            if isinstance(ratio, RatioConfig):
                numerator = ratio.numerator
            if isinstance(numerator, str) and numerator:
                data = {**data, "metric": numerator}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RuleConfig:
        if not self.metric:
            raise field_error("RuleConfig", ("metric",), "Field required", self.metric)
        reserved = sorted(RESERVED_LABELS & set(self.set_labels))
        if reserved:
            raise field_error(
                "RuleConfig",
                ("set_labels", reserved[0]),
                f"{reserved[0]} is given to every alert and cannot be set",
                self.set_labels[reserved[0]],
            )
        if self.logs is not None:
            self._logs_only()
        elif self.absent_for is not None:
            self._absence_only()
        else:
            self._thresholds()
        return self

    def _refuse(self, field: str, message: str) -> None:
        raise field_error("RuleConfig", (field,), message, getattr(self, field, None))

    def _absence_only(self) -> None:
        """An absence rule says only which series and for how long: its alert is 'no data'."""
        for field in ("warning", "critical", "hysteresis", "function", "window", "ratio"):
            if getattr(self, field) is not None:
                self._refuse(
                    field,
                    f"an absence rule (absent_for) has no {field}; watch the value in a rule "
                    "of its own",
                )
        if self.overrides:
            self._refuse("overrides", "an absence rule (absent_for) has no thresholds")
        if self.for_s:
            self._refuse("for", "an absence rule waits absent_for, not for")

    def _logs_only(self) -> None:
        """A log rule counts lines over its window: the fields about samples mean nothing."""
        if self.metric != LOG_RULE_METRIC:
            self._refuse("metric", "a log rule counts log lines; leave metric out")
        for field in ("function", "ratio", "absent_for", "absent_by", "severity"):
            if getattr(self, field) is not None:
                self._refuse(field, f"a log rule (logs) has no {field}")
        if self.labels:
            self._refuse("labels", "a log rule selects lines by logs.labels")
        if self.matchers:
            self._refuse("matchers", "a log rule selects lines by logs.labels, logs.service")
        if self.direction != "above":
            self._refuse("direction", "a log rule fires on too many lines: direction above")
        if self.window is None:
            self._refuse("window", "a log rule counts lines over a window, like 5m")
        if self.warning is None and self.critical is None:
            self._refuse("warning", "a log rule needs a warning or a critical count")
        for name, value in (("warning", self.warning), ("critical", self.critical)):
            if value is not None and value < 1:
                self._refuse(name, "a count of lines must be 1 or more")
        _ordered("RuleConfig", self.direction, self.warning, self.critical)

    def _thresholds(self) -> None:
        if self.warning is None and self.critical is None:
            raise ValueError(
                "a rule needs a warning or a critical threshold (or absent_for for 'no data')"
            )
        if self.severity is not None:
            self._refuse("severity", "severity is for absence rules; set warning or critical")
        if self.absent_by is not None:
            self._refuse("absent_by", "absent_by needs absent_for")
        if self.function is not None and self.window is None and self.function != "last":
            self._refuse("window", f"function {self.function} needs a window, like 5m")
        if self.window is not None and self.function is None:
            self._refuse("function", "a window needs a function: avg, max, p95, rate, ...")
        if self.ratio is not None:
            if self.ratio.numerator != self.metric:
                self._refuse("metric", "a ratio rule's metric is its numerator; leave metric out")
            for field in ("function", "window"):
                if getattr(self, field) is not None:
                    self._refuse(field, "a ratio has its own window: ratio.over")
        _ordered("RuleConfig", self.direction, self.warning, self.critical)
        for index, override in enumerate(self.overrides):
            _ordered(
                "RuleConfig",
                self.direction,
                override.warning if override.warning is not None else self.warning,
                override.critical if override.critical is not None else self.critical,
                ("overrides", index),
            )

    @property
    def is_logs(self) -> bool:
        return self.logs is not None

    @property
    def is_absence(self) -> bool:
        return self.absent_for is not None

    @property
    def lookback_s(self) -> float:
        """How far back samples still count for this rule: its hold, window or absence."""
        return max(
            self.for_s,
            self.window or 0.0,
            self.ratio.over if self.ratio is not None else 0.0,
            self.absent_for or 0.0,
        )
