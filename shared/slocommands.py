"""The SLO queries the metrics service answers (``vigil.query.metrics.slo``, ``.sla_report``)."""

from __future__ import annotations

from pydantic import Field

from shared import subjects
from shared.commands import Command

QUERY_SLO = subjects.command(subjects.METRICS_QUERY, "slo")
QUERY_SLA_REPORT = subjects.command(subjects.METRICS_QUERY, "sla_report")
MAX_VIOLATION_STEPS = 20_000  # steps one answer may judge
MAX_QUERY_SPAN_S = 400 * 86400.0


class SloQuery(Command):
    """Figures of the SLOs (all, or those named or of one service or check) over their
    own window, or over ``window`` (a rolling or calendar window) or ``[start, end)``."""

    slo: str | None = Field(default=None, max_length=100)
    service: str | None = Field(default=None, max_length=200)
    check: str | None = Field(default=None, max_length=100)
    window: str | None = Field(default=None, max_length=20)
    start: float | None = Field(default=None, ge=0, description="Unix seconds, inclusive")
    end: float | None = Field(default=None, ge=0, description="Unix seconds, exclusive")
    step: float | None = Field(
        default=None, ge=1, description="Seconds per step judged for violations"
    )


class SlaReportQuery(Command):
    slo: str = Field(min_length=1, max_length=100)
    month: str = Field(min_length=7, max_length=7, description="YYYY-MM, UTC")
