"""``vigil.query.alerts.explain``: what a rule would do with a label set now — whether it
watches that series, what would keep its alert from paging, whether it flaps. Answered
by the alerts service, which holds the rules, the books and the suppressor."""

from __future__ import annotations

from typing import Any

from services.alerts.domain import fingerprint
from services.alerts.handlers import SampleEvaluator
from services.alerts.suppression import Suppressor
from shared.commands import ExplainLabels, parse_command
from shared.errors import NotFound


class ExplainQueries:
    def __init__(self, evaluator: SampleEvaluator, suppressor: Suppressor):
        self.evaluator = evaluator
        self.suppressor = suppressor

    async def explain(self, body: dict[str, Any]) -> dict[str, Any]:
        query = parse_command(ExplainLabels, body)
        check = next(
            (c for cs in self.evaluator.rules.values() for c in cs if c.rule.name == query.rule),
            None,
        )
        if check is None:
            raise NotFound(f"rule: no rule {query.rule!r}", field="rule")
        rule = check.rule
        labels = dict(query.labels)
        matches = check.matches(labels)
        if matches:
            why = f"{rule.name} watches {rule.metric} on these labels"
        else:
            wanted = ", ".join(f"{k}={v}" for k, v in sorted(rule.labels.items()))
            why = f"{rule.name} watches only {rule.metric} with {wanted}"
        fp = fingerprint(rule.name, labels)
        alert = self.evaluator.writer.book.open.get(fp)
        if alert is not None:
            severity = alert.severity
        else:
            severity = "warning" if rule.warning is not None else "critical"
        refs = self.suppressor.reasons_now(rule.name, severity, rule.metric, labels, fp)
        return {
            "rule": {"name": rule.name, "metric": rule.metric, "matches": matches, "why": why},
            "labels": labels,
            "fingerprint": fp,
            "severity": severity,
            "open_alert": alert.alert_id if alert is not None else None,
            "suppressed_by": [r.model_dump(mode="json") for r in refs],
            "flapping": self.suppressor.flaps.is_flapping(fp),
            "at": self.suppressor.clock().isoformat(),
        }
