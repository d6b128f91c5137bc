"""``GET /api/monitoring/sla/metrics`` and ``/sla/report``: the SLOs' figures over a
window, and one SLO's month as CSV or a printable page."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from services.gateway.common.errors import AUTHENTICATED, problems
from services.gateway.common.owners import request_owner
from services.gateway.common.paths import PREFIX
from services.gateway.common.routes import Viewer
from services.gateway.common.state import StateDep
from services.gateway.logs.router import parse_time
from services.gateway.sla.report import HTML_POLICY, report_csv, report_html
from shared.commands import parse_command
from shared.errors import InvalidInput, NotFound
from shared.slocommands import QUERY_SLA_REPORT, QUERY_SLO, SlaReportQuery, SloQuery

QUERY_TIMEOUT_S = 30.0
router = APIRouter(prefix=PREFIX, tags=["sla"])


@router.get("/sla/metrics", responses=problems(*AUTHENTICATED, 404, 422, 502, 503))
async def sla_metrics(
    _: Viewer,
    state: StateDep,
    slo: Annotated[str | None, Query(description="One SLO by name")] = None,
    service: Annotated[str | None, Query(description="The SLOs of one service")] = None,
    check: Annotated[str | None, Query(description="The SLOs of one synthetic check")] = None,
    window: Annotated[
        str | None,
        Query(description="7d, 28d, 30d (1d to 90d), month or quarter; default each SLO's own"),
    ] = None,
    start: Annotated[
        str | None, Query(description="Unix seconds or RFC 3339, inclusive (with end)")
    ] = None,
    end: Annotated[str | None, Query(description="Unix seconds or RFC 3339, exclusive")] = None,
    step: Annotated[
        float | None, Query(description="Seconds per step judged for violations")
    ] = None,
) -> Any:
    """Per SLO: availability or performance over the window, the objective, error budget
    left, burn rates over the alert windows (as of the window's end), and violations
    (stretches of steps below the objective: start, end, duration)."""
    query = parse_command(
        SloQuery,
        {
            "slo": slo,
            "service": service,
            "check": check,
            "window": window,
            "start": parse_time(start, "start"),
            "end": parse_time(end, "end"),
            "step": step,
        },
    )
    return await request_owner(state, QUERY_SLO, query, timeout=QUERY_TIMEOUT_S)


_MONTH = re.compile(r"^\d{4}-\d{2}$")


@router.get(
    "/sla/report",
    responses={
        **problems(*AUTHENTICATED, 404, 422, 502, 503),
        200: {
            "content": {"text/csv": {}, "text/html": {}},
            "description": "The month's report",
        },
    },
)
async def sla_report(
    _: Viewer,
    state: StateDep,
    month: Annotated[str, Query(description="YYYY-MM, UTC")],
    slo: Annotated[str | None, Query(description="One SLO")] = None,
    service: Annotated[
        str | None, Query(description="Instead of slo: every SLO of this service")
    ] = None,
    format: Annotated[Literal["csv", "html"], Query(description="csv or html")] = "csv",
) -> Response:
    """One SLO (or each SLO of a service) over one calendar month: the month, each day,
    violations (5-minute steps) and the maintenance left out, as CSV or a printable HTML
    page."""
    if (slo is None) == (service is None):
        raise InvalidInput(
            "slo: give slo (one SLO) or service (each SLO of a service), not both or neither",
            field="slo",
        )
    if service is not None:
        listing = await request_owner(
            state,
            QUERY_SLO,
            parse_command(SloQuery, {"service": service, "window": "1d"}),
            timeout=QUERY_TIMEOUT_S,
        )
        names = [item["slo"] for item in listing["slos"]]
        if not names:
            raise NotFound(f"service: no SLO names the service {service!r}", field="service")
    else:
        names = [str(slo)]
    reports = []
    for each in names:
        query = parse_command(SlaReportQuery, {"slo": each, "month": month.strip()})
        reports.append(await request_owner(state, QUERY_SLA_REPORT, query, timeout=QUERY_TIMEOUT_S))
    subject = str(slo if slo is not None else service)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", subject)
    if format == "html":
        title = f"SLA report {subject} — {query.month}"
        return Response(
            report_html(reports, title),
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": HTML_POLICY},
        )
    return Response(
        "\n".join(report_csv(report) for report in reports),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="sla-{name}-{query.month}.csv"'},
    )
