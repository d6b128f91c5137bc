"""What a message says: its title and text (a channel's own templates or the defaults),
the links to the alert and its runbook, and the digest of notifications merged into it.

Every channel renders through here, so Slack, PagerDuty, Teams, Discord and email say
the same thing in their own format.

Templates are Jinja2 run in a ``SandboxedEnvironment``: whoever may edit a channel may
write a template, and must not reach Python internals through it (``{{ ''.__class__ }}``
is refused). A missing variable renders empty rather than failing a page at 3 a.m.; a
template that does fail is a configuration error, reported as a permanent delivery
failure naming the template, since sending it again will not mend it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from services.notifier.domain import Notification
from shared.channelconfig import ChannelBase
from shared.errors import PermanentDeliveryError

PUBLIC_URL_ENV = "VIGIL_PUBLIC_URL"
DEFAULT_PUBLIC_URL = "http://localhost:8080"
MAX_RENDERED_CHARS = 8000
DIGEST_LIST_LIMIT = 5


class LenientUndefined(jinja2.ChainableUndefined):
    """A missing variable (or its attributes) renders empty; an attribute the sandbox
    refuses is refused loudly rather than quietly rendered empty."""

    def __str__(self) -> str:
        if self._undefined_exception is not jinja2.UndefinedError:
            self._fail_with_undefined_error()
        return ""


_ENV = SandboxedEnvironment(
    autoescape=False,
    undefined=LenientUndefined,
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)


# --- templates -----------------------------------------------------------------


def validate_template(text: str) -> None:
    """Raises ValueError naming the line and the syntax error; config validation calls it."""
    try:
        _compiled(text)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"line {exc.lineno}: {exc.message}") from None


@lru_cache(maxsize=256)
def _compiled(text: str) -> jinja2.Template:
    return _ENV.from_string(text)


def render(text: str, context: dict[str, Any], name: str) -> str:
    """``text`` rendered with ``context``; any failure is a PermanentDeliveryError naming
    ``name`` (which channel's which template)."""
    try:
        rendered = _compiled(text).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise PermanentDeliveryError(f"template {name}: line {exc.lineno}: {exc.message}") from None
    except jinja2.exceptions.SecurityError as exc:
        raise PermanentDeliveryError(f"template {name} is not allowed: {exc}") from None
    except Exception as exc:  # a template may raise anything its expressions raise
        raise PermanentDeliveryError(
            f"template {name} failed: {type(exc).__name__}: {exc}"
        ) from None
    return rendered.strip()[:MAX_RENDERED_CHARS]


def context_for(notification: Notification) -> dict[str, Any]:
    """What a template sees: the notification payload's keys (event, summary, alert or
    incident, page...), plus ``links`` {dashboard, runbook} and ``digest`` (the payloads
    merged into this message)."""
    payload = notification.payload
    return {
        **payload,
        "links": {"dashboard": dashboard_url(payload), "runbook": runbook_url(payload)},
        "digest": list(notification.digest),
    }


def title_for(channel: ChannelBase, notification: Notification) -> str:
    """The channel's title template rendered, or the default headline."""
    template = channel.template.title if channel.template else None
    if template:
        rendered = render(template, context_for(notification), f"{channel.name}.title")
        if rendered:
            return rendered
    return headline(notification.payload)


def text_for(channel: ChannelBase, notification: Notification) -> str:
    """The channel's text template rendered, or the notification's summary line."""
    template = channel.template.text if channel.template else None
    if template:
        rendered = render(template, context_for(notification), f"{channel.name}.text")
        if rendered:
            return rendered
    return str(notification.payload.get("summary") or notification.event_type)


# --- what every message carries --------------------------------------------------


def severity_of(payload: dict[str, Any]) -> str:
    subject = payload.get("alert") or payload.get("incident") or payload.get("page") or {}
    return str(subject.get("severity") or "info")


def status_of(payload: dict[str, Any]) -> str:
    """firing / acknowledged / resolved / investigating...: the subject's state as this
    event leaves it."""
    event = payload.get("event")
    if event in ("AlertResolved", "IncidentResolved"):
        return "resolved"
    if event == "AlertAcknowledged":
        return "acknowledged"
    subject = payload.get("alert") or payload.get("incident") or {}
    return str(subject.get("status") or "firing")


def headline(payload: dict[str, Any]) -> str:
    """A short title: ``[CRITICAL] cpu-high firing``, ``[RESOLVED] Incident: API down``."""
    status = status_of(payload)
    mark = status.upper() if status in ("resolved", "acknowledged") else None
    if alert := payload.get("alert"):
        mark = mark or str(alert.get("severity") or "alert").upper()
        escalated = " escalated" if payload.get("event") == "AlertEscalated" else ""
        state = "" if mark == status.upper() else f" {status}{escalated}"
        return f"[{mark}] {alert.get('rule', 'alert')}{state}"
    if incident := payload.get("incident"):
        mark = mark or str(incident.get("severity") or "incident").upper()
        return f"[{mark}] Incident: {incident.get('title', '')}"
    if (page := payload.get("page")) and page.get("rule"):
        return f"[{str(page.get('severity') or 'alert').upper()}] {page['rule']} firing"
    return str(payload.get("summary") or payload.get("event") or "Vigil notification")


def public_url() -> str:
    return (os.environ.get(PUBLIC_URL_ENV) or DEFAULT_PUBLIC_URL).rstrip("/")


def dashboard_url(payload: dict[str, Any]) -> str:
    """The alert's (or incident's) page in Vigil's dashboard."""
    base = f"{public_url()}/monitoring"
    if alert := payload.get("alert"):
        return f"{base}#/alerts/{quote(str(alert.get('id', '')), safe='')}"
    if incident := payload.get("incident"):
        return f"{base}#/incidents/{quote(str(incident.get('id', '')), safe='')}"
    return base


def runbook_url(payload: dict[str, Any]) -> str | None:
    """The alert's runbook, when its labels (or the payload) name an http(s) one."""
    alert = payload.get("alert") or {}
    url = (alert.get("labels") or {}).get("runbook_url") or alert.get("runbook_url")
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return url
    return None


def fields_of(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) pairs worth showing beside the text: value, threshold, labels."""
    found: list[tuple[str, str]] = []
    if alert := payload.get("alert"):
        if alert.get("value") is not None:
            found.append(("Value", f"{alert.get('metric', '')} = {number(alert['value'])}"))
        if alert.get("threshold") is not None:
            found.append(("Threshold", number(alert["threshold"])))
        found.append(("Severity", str(alert.get("severity", ""))))
        found += [
            (str(name), str(value))
            for name, value in (alert.get("labels") or {}).items()
            if name != "runbook_url"
        ]
    elif incident := payload.get("incident"):
        found.append(("Severity", str(incident.get("severity", ""))))
        found.append(("Status", str(incident.get("status", ""))))
    if (page := payload.get("page")) and page.get("step") is not None:
        found.append(("Escalation step", str(page["step"])))
    return found


def digest_lines(notification: Notification, limit: int = DIGEST_LIST_LIMIT) -> list[str]:
    """``12 more alerts for cpu-high`` and a short list of them, or nothing."""
    digest = list(notification.digest)
    if not digest:
        return []
    alerts = all("alert" in item for item in digest)
    noun = ("alert" if alerts else "notification") + ("" if len(digest) == 1 else "s")
    payload = notification.payload
    subject = (payload.get("alert") or {}).get("rule") or (payload.get("incident") or {}).get(
        "title"
    )
    lines = [f"{len(digest)} more {noun}" + (f" for {subject}" if subject else "")]
    lines += [
        f"• {str(item.get('summary') or item.get('event', ''))[:300]}" for item in digest[:limit]
    ]
    if len(digest) > limit:
        lines.append(f"… and {len(digest) - limit} more")
    return lines


def number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
