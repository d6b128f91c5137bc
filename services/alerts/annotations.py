"""A rule's annotations rendered for one alert: ``summary``, ``description``,
``runbook_url``, ``dashboard_url`` and any other, as Jinja2 templates over the alert's
``labels``, ``value``, ``threshold``, ``severity``, ``rule`` and ``metric``.

Whoever may write a rule may write a template, so they run sandboxed (no reaching
Python internals). A template's syntax is checked when the rule is accepted; one that
still fails when rendered (a refused attribute, a type error) must not stop the alert,
so its text goes out unrendered and the failure is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

log = logging.getLogger(__name__)

MAX_RENDERED_CHARS = 4000


class _Blank(jinja2.ChainableUndefined):
    """A label the series lacks renders empty, as in Prometheus templates; an attribute
    the sandbox refuses is refused loudly rather than quietly rendered empty."""

    def __str__(self) -> str:
        if self._undefined_exception is not jinja2.UndefinedError:
            self._fail_with_undefined_error()
        return ""


_ENV = SandboxedEnvironment(autoescape=False, undefined=_Blank, keep_trailing_newline=False)


@lru_cache(maxsize=1024)
def _compiled(text: str) -> jinja2.Template:
    return _ENV.from_string(text)


def render_annotations(
    rule: str, templates: Mapping[str, str], context: Mapping[str, Any]
) -> dict[str, str]:
    rendered: dict[str, str] = {}
    for name, text in templates.items():
        try:
            out = _compiled(text).render(dict(context))
        except Exception as exc:  # a template may raise anything its expressions raise
            log.warning(
                "annotation not rendered",
                extra={"rule": rule, "annotation": name, "error": f"{type(exc).__name__}: {exc}"},
            )
            out = text
        rendered[name] = out[:MAX_RENDERED_CHARS]
    return rendered
