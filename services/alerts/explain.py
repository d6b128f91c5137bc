"""``vigil.query.alerts.explain``: what a rule would do with a label set now — whether it
watches that series, what would keep its alert from paging, whether it flaps. Answered
by the alerts service, which holds the rules, the books and the suppressor."""

from __future__ import annotations

from typing import Any

from services.alerts.domain import fingerprint
from services.alerts.handlers import SampleEvaluator
from services.alerts.logrules import LogEvaluator
from services.alerts.rulecompile import CompiledRule
from services.alerts.suppression import Suppressor
from shared.commands import ExplainLabels, parse_command
from shared.errors import NotFound
from shared.events import Severity


class ExplainQueries:
    def __init__(
        self, evaluator: SampleEvaluator, suppressor: Suppressor, logs: LogEvaluator | None = None
    ):
        self.evaluator = evaluator
        self.suppressor = suppressor
        self.logs = logs

    async def explain(self, body: dict[str, Any]) -> dict[str, Any]:
        query = parse_command(ExplainLabels, body)
        check = self.evaluator.engine.rules.get(query.rule)
        if check is None:
            raise NotFound(f"rule: no rule {query.rule!r}", field="rule")
        rule = check.rule
        labels = dict(query.labels)
        matches = check.matches(labels)
        counted = self.logs.explain(rule.name, labels) if self.logs is not None else None
        if counted is not None:
            why = (
                f"{rule.name} counts log lines: {counted['count']} in the last "
                f"{counted['window_s']:g} s"
            )
        elif matches:
            why = f"{rule.name} watches {rule.metric} on these labels"
        else:
            wanted = [f"{k}={v}" for k, v in sorted(rule.labels.items())] + list(rule.matchers)
            why = f"{rule.name} watches only {rule.metric} with {', '.join(wanted)}"
        fp = fingerprint(rule.name, labels)
        alert = self.evaluator.writer.book.open.get(fp)
        severity = alert.severity if alert is not None else _first_severity(check, labels)
        refs = self.suppressor.reasons_now(
            rule.name, severity, rule.metric, check.alert_labels(labels), fp
        )
        return {
            "rule": {"name": rule.name, "metric": rule.metric, "matches": matches, "why": why},
            "labels": labels,
            "fingerprint": fp,
            "severity": severity,
            "open_alert": alert.alert_id if alert is not None else None,
            "suppressed_by": [r.model_dump(mode="json") for r in refs],
            "flapping": self.suppressor.flaps.is_flapping(fp),
            "at": self.suppressor.clock().isoformat(),
            "logs": counted,
        }


def _first_severity(check: CompiledRule, labels: dict[str, str]) -> Severity:
    """The severity an alert of this rule on these labels would fire at first."""
    if check.kind == "absence":
        return check.rule.severity or "critical"
    return "warning" if check.thresholds_for(labels).warning is not None else "critical"
