"""Durations in the form the YAML file uses (``10s``, ``5m``, ``250ms``): the API answers
with them so that what a user reads in one can be written in the other."""

from __future__ import annotations

from typing import Annotated

from pydantic import PlainSerializer

UNITS = (("d", 86_400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0))


def format_duration(seconds: float) -> str:
    """The largest whole unit that says ``seconds`` exactly; parse_duration reads it back."""
    for unit, size in UNITS:
        count = seconds / size
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    millis = seconds * 1000
    if millis == int(millis):
        return f"{int(millis)}ms"
    return f"{seconds:g}s"


DurationText = Annotated[
    float, PlainSerializer(format_duration, return_type=str, when_used="always")
]
