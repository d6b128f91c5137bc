"""Security headers on every response.

The dashboard's policy allows scripts, styles and connections from the gateway only: no
inline script or style, no framing, no plugins. The API documentation pages bring their
own policy (see ``docs``), which a response may set; every other response gets this one.
"""

from __future__ import annotations

CSP = "content-security-policy"
DASHBOARD_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

ALWAYS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The response's headers plus ours; a policy the response chose itself is kept."""
    present = {name.lower() for name, _ in headers}
    added = [(name, value) for name, value in ALWAYS if name not in present]
    if CSP.encode() not in present:
        added.append((CSP.encode(), DASHBOARD_POLICY.encode()))
    return [*headers, *added]
