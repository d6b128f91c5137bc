"""Remote-write 1.0 bodies for the gateway's tests: the product's own encoder, whose
low-level pieces (``field``, ``varint``) also build deliberately malformed bodies."""

from __future__ import annotations

from shared.promwire import (
    REMOTE_WRITE_HEADERS,
    field,
    snappy,
    time_series,
    varint,
    write_request,
)

__all__ = ["REMOTE_WRITE_HEADERS", "field", "snappy", "time_series", "varint", "write_request"]
