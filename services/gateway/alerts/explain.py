"""Why an alert paged or did not, told from its events alone: its own (ALERTS), its
escalation (PAGING) and what was delivered about it (NOTIFICATIONS), merged by time.

Pure: the router hands in the alert's row and merged timeline and gets back the
explanation, a chronological list of steps and a one-line verdict a person can read at
03:12 ("paged alice via slack at ..." or "not paged: silenced by ... until ...").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from shared.events import SuppressionRef
from shared.ruleconfig import LOG_RULE_METRIC

TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.strftime(TIME_FORMAT)


def _ref(ref: SuppressionRef | Mapping[str, Any]) -> SuppressionRef:
    return ref if isinstance(ref, SuppressionRef) else SuppressionRef.model_validate(ref)


def describe_ref(ref: SuppressionRef | Mapping[str, Any]) -> str:
    """``silenced by s-1 (deploy) until ...``, ``inhibited by <alert> (HostDown)``..."""
    found = _ref(ref)
    note = f" ({found.detail})" if found.detail else ""
    until = f" until {when(found.until)}" if found.until else ""
    if found.kind == "silence":
        return f"silenced by {found.id}{note}{until}"
    if found.kind == "inhibition":
        return f"inhibited by alert {found.id}{note}"
    if found.kind == "maintenance":
        return f"in maintenance window {found.id}{note}{until}"
    return f"flapping{note}"


def describe_refs(refs: Iterable[SuppressionRef | Mapping[str, Any]]) -> str:
    return "; ".join(describe_ref(r) for r in refs)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else "?"


def _fired(event: Mapping[str, Any]) -> str:
    value, threshold = _number(event.get("value")), _number(event.get("threshold"))
    if event.get("reason") == "absent":
        what = f"no data from {event['metric']} for {value}s"
    elif event["metric"] == LOG_RULE_METRIC and not event.get("source_seq"):
        return (
            f"rule {event['rule']} fired {event['severity']}: {value} matching log lines in "
            f"its window (threshold {threshold}); counted from LOGS"
        )
    else:
        what = f"{event['metric']} = {value} (threshold {threshold})"
    return (
        f"rule {event['rule']} fired {event['severity']}: {what}; sample "
        f"#{event.get('source_index', 0)} of METRICS batch seq {event.get('source_seq', 0)}"
    )


def _alert_step(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What one alert event says, as (what, detail) steps."""
    event = entry["event"]
    kind = entry["type"]
    refs = event.get("suppressed_by") or []
    steps: list[tuple[str, str]] = []
    if kind == "AlertFired":
        steps.append(("fired", _fired(event)))
    elif kind == "AlertEscalated":
        steps.append(
            (
                "escalated",
                f"{event['previous_severity']} → {event['severity']}: {event['metric']} = "
                f"{_number(event.get('value'))} (threshold {_number(event.get('threshold'))})",
            )
        )
    elif kind == "AlertAcknowledged":
        note = f": {event['comment']}" if event.get("comment") else ""
        steps.append(("acknowledged", f"by {event['by']}{note}"))
    elif kind == "AlertResolved":
        by = f" by {event['by']}" if event.get("by") else ""
        steps.append(("resolved", f"{event.get('reason', 'recovered')}{by}"))
    elif kind == "AlertSuppressionChanged":
        if refs:
            return [("suppressed", f"pages nobody: {describe_refs(refs)}")]
        ended = describe_refs(event.get("previous") or []) or "suppressed"
        pages = "; pages now" if event.get("status") == "firing" else ""
        return [("unsuppressed", f"no longer {ended}{pages}")]
    elif kind == "AlertFlapping":
        steps.append(
            ("flapping", f"{event['changes']} changes within {_number(event['window_s'])}s")
        )
        refs = [r for r in refs if r.get("kind") != "flapping"]
    elif kind == "AlertSettled":
        steps.append(("settled", f"stopped flapping, {event['status']}"))
    else:
        steps.append((kind, entry.get("detail", "")))
    if refs:
        steps.append(("suppressed", f"pages nobody: {describe_refs(refs)}"))
    return steps


PAGING_WHAT = {
    "EscalationStarted": "escalation",
    "EscalationStepScheduled": "escalation step due",
    "EscalationStepFired": "paged",
    "EscalationStopped": "escalation stopped",
}


def _page_line(entry: Mapping[str, Any]) -> str | None:
    """The verdict when this entry is the first page: who, through what, when."""
    event = entry["event"]
    at = when(entry["time"])
    if entry["type"] == "EscalationStepFired":
        targets = event.get("targets") or []
        if not targets:
            return None
        first = targets[0]
        who = first.get("user") or f"channel {first['channel']}"
        via = f" via {first['channel']}" if first.get("user") else ""
        more = f" (and {len(targets) - 1} more)" if len(targets) > 1 else ""
        return f"paged {who}{via}{more} at {at} (escalation {event['policy']})"
    if entry["type"] == "NotificationDelivered":
        who = event.get("user") or event.get("recipient")
        to = f"{who} via {event['channel']}" if who else f"via {event['channel']}"
        return f"paged {to} at {at} ({event['event_type']})"
    return None


def explain_alert(row: Mapping[str, Any], timeline: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The explanation of one alert (``AlertExplanationPublic``'s fields)."""
    steps: list[dict[str, Any]] = []
    fired_by: dict[str, Any] | None = None
    verdict: str | None = None
    channels: list[str] = []
    policies: list[str] = []
    failures: list[str] = []
    last_muted: list[Any] = []
    for entry in timeline:
        stream, event, kind = entry.get("stream", ""), entry["event"], entry["type"]
        if stream == "ALERTS":
            if kind == "AlertFired" and fired_by is None:
                fired_by = {
                    "rule": event["rule"],
                    "metric": event["metric"],
                    "severity": event["severity"],
                    "reason": event.get("reason", "threshold"),
                    "value": event["value"],
                    "threshold": event["threshold"],
                    "source_seq": event.get("source_seq", 0),
                    "source_index": event.get("source_index", 0),
                    "at": entry["time"],
                }
            muted = [
                r
                for r in event.get("suppressed_by") or []
                if kind != "AlertFlapping" or r.get("kind") != "flapping"
            ]
            if muted:
                last_muted = muted
            found = _alert_step(entry)
        elif stream == "PAGING":
            if kind == "EscalationStarted" and event["policy"] not in policies:
                policies.append(event["policy"])
            found = [(PAGING_WHAT.get(kind, kind), entry.get("detail", ""))]
        else:
            if kind == "NotificationDelivered" and event["channel"] not in channels:
                channels.append(event["channel"])
            if kind == "NotificationFailed":
                failures.append(entry.get("detail", ""))
            what = "delivered" if kind == "NotificationDelivered" else "delivery failed"
            found = [(what, entry.get("detail", ""))]
        if verdict is None:
            verdict = _page_line(entry)
        steps.extend({"at": entry["time"], "what": w, "detail": d} for w, d in found)
    current = list(row.get("suppressed_by") or [])
    paged = verdict is not None
    if verdict is None:
        if current:
            verdict = f"not paged: {describe_refs(current)}"
        elif failures:
            verdict = f"not paged: {failures[-1]}"
        elif last_muted:
            verdict = f"not paged: {describe_refs(last_muted)}"
        else:
            verdict = "not paged: no channel or escalation policy has taken it (yet)"
    return {
        "alert_id": row["id"],
        "status": row["status"],
        "verdict": verdict,
        "paged": paged,
        "fired_by": fired_by,
        "suppressed_by": current,
        "flapping": bool(row.get("flapping")),
        "channels": channels,
        "escalation_policies": policies,
        "steps": steps,
    }
