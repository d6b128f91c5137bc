"""The monthly SLA report as CSV and as one printable HTML page (its style inline and
allowed by hash, no outside assets)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from datetime import UTC, datetime
from html import escape
from typing import Any

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; color: #111; margin: 2em; }
h1 { font-size: 1.5em; margin: 0 0 .2em; }
.meta { color: #555; margin: 0 0 1.5em; }
table { border-collapse: collapse; width: 100%; margin: 0 0 1.5em; }
th, td { border: 1px solid #bbb; padding: .25em .5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #eee; }
.met { color: #075e07; } .missed { color: #a00; font-weight: bold; }
@media print {
  body { margin: 0; font-size: 11pt; }
  thead { display: table-header-group; }
  tr { page-break-inside: avoid; }
  h2 { page-break-after: avoid; }
  @page { size: A4; margin: 15mm; }
}
"""
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
HTML_POLICY = f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; frame-ancestors 'none'"


def _percent(share: float | None, digits: int = 4) -> str:
    return "" if share is None else f"{100 * share:.{digits}f}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {sec:02d}s" if hours else f"{minutes}m {sec:02d}s"


def _met(report: dict[str, Any]) -> bool | None:
    sli = report.get("sli")
    return None if sli is None else 100 * sli >= report["objective"]


def report_csv(report: dict[str, Any]) -> str:
    """Sections one after another: the month, each day, each violation, maintenance."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    met = _met(report)
    w.writerow(
        [
            "slo",
            "service",
            "month",
            "objective_percent",
            "sli_percent",
            "met",
            "good",
            "total",
            "bad",
            "budget_remaining_percent",
            "complete",
        ]
    )
    w.writerow(
        [
            report["slo"],
            report["service"],
            report["month"],
            _number(report["objective"]),
            _percent(report["sli"]),
            "" if met is None else ("yes" if met else "no"),
            _number(report["good"]),
            _number(report["total"]),
            _number(report["bad"]),
            _percent(report["budget_remaining"], 2),
            "yes" if report["complete"] else "no",
        ]
    )
    w.writerow([])
    w.writerow(["date", "sli_percent", "good", "total", "bad", "budget_remaining_percent"])
    for day in report["days"]:
        w.writerow(
            [
                day["date"],
                _percent(day["sli"]),
                _number(day["good"]),
                _number(day["total"]),
                _number(day["bad"]),
                _percent(day["budget_remaining"], 2),
            ]
        )
    w.writerow([])
    w.writerow(["violation_start", "violation_end", "duration_s", "sli_percent", "good", "total"])
    for v in report["violations"]:
        w.writerow(
            [
                _when(v["start"]),
                _when(v["end"]),
                _number(v["duration_s"]),
                _percent(v["sli"]),
                _number(v["good"]),
                _number(v["total"]),
            ]
        )
    if report["maintenance_excluded"]:
        w.writerow([])
        w.writerow(["maintenance_start", "maintenance_end", "duration_s"])
        for m in report["maintenance_excluded"]:
            w.writerow([_when(m["start"]), _when(m["end"]), _number(m["duration_s"])])
    return out.getvalue()


def _rows(cells: list[list[str]]) -> str:
    return "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells)


def _table(head: list[str], cells: list[list[str]]) -> str:
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{_rows(cells)}</tbody></table>"


def report_html(reports: list[dict[str, Any]], title: str) -> str:
    """One page: a report, or a service's reports one after another."""
    if len(reports) == 1:
        body = _section(reports[0], 1)
    else:
        body = f"<h1>{escape(title)}</h1>" + "".join(_section(r, 2) for r in reports)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


def _section(report: dict[str, Any], level: int) -> str:
    """One SLO's month, its heading at ``level`` and its parts one below."""
    met = _met(report)
    verdict = (
        "no events"
        if met is None
        else '<span class="met">objective met</span>'
        if met
        else '<span class="missed">objective missed</span>'
    )
    title = f"SLA report {escape(report['slo'])} — {escape(report['month'])}"
    kind = "Availability" if report["sli_kind"] == "availability" else "Performance"
    summary = _table(
        ["Objective", kind, "Good", "Total", "Bad", "Error budget left", "Verdict"],
        [
            [
                f"{report['objective']:g} %",
                f"{_percent(report['sli'])} %" if report["sli"] is not None else "-",
                _number(report["good"]),
                _number(report["total"]),
                _number(report["bad"]),
                f"{_percent(report['budget_remaining'], 2)} %"
                if report["budget_remaining"] is not None
                else "-",
                verdict,
            ]
        ],
    )
    days = _table(
        ["Date (UTC)", kind, "Good", "Total", "Bad", "Budget left"],
        [
            [
                escape(d["date"]),
                _percent(d["sli"]),
                _number(d["good"]),
                _number(d["total"]),
                _number(d["bad"]),
                _percent(d["budget_remaining"], 2),
            ]
            for d in report["days"]
        ],
    )
    violations = (
        _table(
            ["Start (UTC)", "End (UTC)", "Duration", kind, "Good", "Total"],
            [
                [
                    _when(v["start"]),
                    _when(v["end"]),
                    _duration(v["duration_s"]),
                    _percent(v["sli"]),
                    _number(v["good"]),
                    _number(v["total"]),
                ]
                for v in report["violations"]
            ],
        )
        if report["violations"]
        else "<p>None.</p>"
    )
    maintenance = ""
    if report["maintenance_excluded"]:
        maintenance = "<h2>Maintenance left out</h2>" + _table(
            ["Start (UTC)", "End (UTC)", "Duration"],
            [
                [_when(m["start"]), _when(m["end"]), _duration(m["duration_s"])]
                for m in report["maintenance_excluded"]
            ],
        )
    parts = [f"Service {escape(report['service'])}" if report["service"] else ""]
    parts.append(escape(report["description"]))
    about = " · ".join(part for part in parts if part)
    partial = "" if report["complete"] else " (month in progress)"
    top, sub = f"h{level}", f"h{level + 1}"
    maintenance = maintenance.replace("<h2>", f"<{sub}>").replace("</h2>", f"</{sub}>")
    return (
        f"<{top}>{title}</{top}>"
        f'<p class="meta">{about + "<br>" if about else ""}'
        f"From {_when(report['start'])} to {_when(report['end'])} UTC{partial}; "
        f"violations judged in {report['step_s']:g} s steps</p>"
        f"{summary}<{sub}>Violations</{sub}>{violations}{maintenance}"
        f"<{sub}>Each day</{sub}>{days}"
    )
