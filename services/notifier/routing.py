"""Walks the routing tree for one event: which channels, which escalation policy, which
group. Pure; the tree is compiled once per configuration."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from shared.events import (
    AlertEvent,
    EscalationStepFired,
    Event,
    IncidentOpened,
    IncidentResolved,
)
from shared.matchers import Matcher, parse_matcher
from shared.routingconfig import ALL_LABELS, RouteConfig


@dataclass(frozen=True)
class Grouping:
    group_by: tuple[str, ...]
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float

    def key(self, route_id: str, labels: dict[str, str], subject: str) -> str:
        """Events with the same key share messages; with ``...`` each subject is alone."""
        if ALL_LABELS in self.group_by:
            return f"{route_id}/{subject}"
        values = "\x1f".join(f"{n}={labels.get(n, '')}" for n in self.group_by)
        return f"{route_id}/" + hashlib.sha256(values.encode()).hexdigest()[:16]


# what the root inherits when the file says nothing: every alert a group of its own,
# every event sent at once, nothing repeated
ALONE = Grouping((ALL_LABELS,), 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Route:
    id: str  # its path in the tree, e.g. "0.2": stable while the file stays the same
    matchers: tuple[Matcher, ...]
    channels: tuple[str, ...] | None
    policy: str | None
    continue_: bool
    grouping: Grouping
    children: tuple[Route, ...] = field(default=())


@dataclass(frozen=True)
class RouteMatch:
    """One route that took the event."""

    route: str
    channels: tuple[str, ...] | None  # None = every channel (each by its events)
    policy: str | None
    group: str
    grouping: Grouping


def compile_tree(config: RouteConfig | None) -> Route:
    root = config if config is not None else RouteConfig()
    return _compile(root, "root", ALONE, None, None)


def _compile(
    node: RouteConfig,
    path: str,
    parent: Grouping,
    channels: tuple[str, ...] | None,
    policy: str | None,
) -> Route:
    grouping = Grouping(
        tuple(node.group_by) if node.group_by is not None else parent.group_by,
        node.group_wait if node.group_wait is not None else parent.group_wait_s,
        node.group_interval if node.group_interval is not None else parent.group_interval_s,
        node.repeat_interval if node.repeat_interval is not None else parent.repeat_interval_s,
    )
    own_channels = tuple(node.channels) if node.channels is not None else channels
    own_policy = node.escalation_policy if node.escalation_policy is not None else policy
    return Route(
        id=path,
        matchers=tuple(parse_matcher(m) for m in node.matchers),
        channels=own_channels,
        policy=own_policy,
        continue_=node.continue_,
        grouping=grouping,
        children=tuple(
            _compile(child, f"{path}.{index}", grouping, own_channels, own_policy)
            for index, child in enumerate(node.routes)
        ),
    )


def route_labels(event: Event) -> tuple[dict[str, str], str] | None:
    """The labels routes match on, and the subject (alert or incident) the event is about."""
    if isinstance(event, AlertEvent):
        labels = dict(event.labels)
        labels.update(
            rule=event.rule,
            alertname=event.rule,
            severity=event.severity,
            metric=event.metric,
            kind="alert",
        )
        return labels, event.aggregate_id
    if isinstance(event, IncidentOpened | IncidentResolved):
        labels = {"severity": event.severity, "kind": "incident", "title": event.title}
        return labels, event.aggregate_id
    if isinstance(event, EscalationStepFired):
        labels = dict(event.labels)
        labels.update(
            rule=event.rule,
            alertname=event.rule,
            severity=event.severity,
            metric=event.metric,
            kind="page",
            policy=event.policy,
        )
        return labels, event.alert_id
    return None


def matches(root: Route, labels: dict[str, str]) -> list[Route]:
    """The deepest matching routes, Alertmanager's way: children first, ``continue`` lets
    later siblings match too; a node none of whose children match takes the event."""
    if not all(m.matches(labels) for m in root.matchers):
        return []
    found: list[Route] = []
    for child in root.children:
        taken = matches(child, labels)
        if taken:
            found.extend(taken)
            if not child.continue_:
                break
    return found or [root]


def routes_for(root: Route, event: Event) -> list[RouteMatch]:
    about = route_labels(event)
    if about is None:
        return []
    labels, subject = about
    return [
        RouteMatch(
            route=route.id,
            channels=route.channels,
            policy=route.policy,
            group=route.grouping.key(route.id, labels, subject),
            grouping=route.grouping,
        )
        for route in matches(root, labels)
    ]
