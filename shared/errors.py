"""Domain errors, defined once and mapped once: to HTTP in the gateway, to ack/nack in consumers."""

from __future__ import annotations


class VigilError(Exception):
    """Base: carries a message meant for the API user."""

    kind = "error"
    http_status = 500

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, str]:
        body = {"kind": self.kind, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body


class NotFound(VigilError):
    kind = "not_found"
    http_status = 404


class Conflict(VigilError):
    """An optimistic-concurrency clash: someone else appended first. Reload and retry."""

    kind = "conflict"
    http_status = 409


class Unauthenticated(VigilError):
    """No credentials, or credentials that are unknown, expired or revoked."""

    kind = "unauthenticated"
    http_status = 401


class Forbidden(VigilError):
    """Authenticated, but the identity's role does not allow this."""

    kind = "forbidden"
    http_status = 403


class InvalidTransition(VigilError):
    kind = "invalid_transition"
    http_status = 409


class InvalidInput(VigilError):
    kind = "invalid_input"
    http_status = 422


class Unavailable(VigilError):
    """The owning service did not answer in time."""

    kind = "unavailable"
    http_status = 503


class StreamFull(Unavailable):
    """A stream that keeps its history reached its byte limit and refuses new events until
    the limit is raised: the surroundings' fault, never the message's."""


class Overloaded(VigilError):
    """Behind on work already accepted: try again after ``retry_after_s``."""

    kind = "overloaded"
    http_status = 429

    def __init__(self, message: str, field: str | None = None, retry_after_s: float = 1.0):
        super().__init__(message, field)
        self.retry_after_s = retry_after_s


class PermanentDeliveryError(VigilError):
    """Retrying will not help (bad URL, 4xx): record the failure, do not redeliver."""

    kind = "permanent_delivery"


class TransientDeliveryError(VigilError):
    """Worth retrying later (timeouts, 5xx, 429): nack with delay."""

    kind = "transient_delivery"


ERROR_KINDS: dict[str, type[VigilError]] = {
    cls.kind: cls
    for cls in (
        NotFound,
        Conflict,
        InvalidTransition,
        InvalidInput,
        Unavailable,
        Overloaded,
        Unauthenticated,
        Forbidden,
    )
}


def error_from_dict(body: dict[str, str]) -> VigilError:
    cls = ERROR_KINDS.get(body.get("kind", ""), VigilError)
    return cls(body.get("message", "unknown error"), body.get("field"))
