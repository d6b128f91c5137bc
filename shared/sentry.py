"""Vigil's own errors, reported to Sentry when ``SENTRY_DSN`` is set.

A monitoring system is the thing nobody watches: when one of its services fails, the
operator should hear about it somewhere other than in the logs of the failing process.
Reporting is strictly best effort: a bad DSN or an unreachable Sentry never stops a
service from starting or working.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from importlib import metadata

log = logging.getLogger(__name__)

DEFAULT_ENVIRONMENT = "production"


def vigil_version() -> str:
    try:
        return metadata.version("vigil")
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        return "0+unknown"


def init_sentry(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Start reporting this process's unhandled errors and ERROR logs; True when on.

    Tracing stays off and integrations are not auto-enabled: reporting errors must not
    add work to the paging path. No personal data is sent (``send_default_pii=False``).
    """
    env = os.environ if environ is None else environ
    dsn = env.get("SENTRY_DSN", "").strip()
    if not dsn:
        return False
    try:
        import sentry_sdk
        from sentry_sdk.integrations.logging import LoggingIntegration

        sentry_sdk.init(
            dsn=dsn,
            release=f"vigil@{vigil_version()}",
            environment=env.get("VIGIL_ENVIRONMENT", "").strip() or DEFAULT_ENVIRONMENT,
            server_name=socket.gethostname(),
            traces_sample_rate=None,
            send_default_pii=False,
            auto_enabling_integrations=False,
            integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
        )
        # the global scope, so events from every task and thread carry it
        sentry_sdk.get_global_scope().set_tag("service", service)
    except Exception as exc:  # the DSN holds a key: name the problem, never the value
        log.warning(
            "SENTRY_DSN is not usable; errors are not reported to Sentry",
            extra={"service": service, "error": type(exc).__name__},
        )
        return False
    return True
