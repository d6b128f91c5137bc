"""The one error the engine raises, carrying Prometheus' ``errorType`` so the HTTP layer
can answer exactly as Prometheus would (``bad_data`` → 400, ``execution`` → 422...)."""

from __future__ import annotations

BAD_DATA = "bad_data"
EXECUTION = "execution"
TIMEOUT = "timeout"


class PromQLError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message

    def __str__(self) -> str:
        return self.message
