"""The building blocks of configuration models: durations, names, strict models.

Its own module so that the per-kind models (rules, channels, paging) can share them
without importing one another.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """``250ms``, ``30s``, ``5m``, ``1h``, ``2d`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError("duration must be like 30s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    else:
        raise ValueError(f"duration must be like 30s, 5m or 1h, not {value!r}")
    if seconds < 0:
        raise ValueError("duration must not be negative")
    return seconds


_UNITS_DOWN = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0))


def format_duration(seconds: float) -> str:
    """The file's form of a duration (``30s``, ``5m``, ``250ms``); reads back unchanged."""
    if seconds == 0:
        return "0s"
    for unit, size in _UNITS_DOWN:
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    millis = seconds * 1000
    if float(millis).is_integer():
        return f"{int(millis)}ms"
    return f"{seconds:.9f}".rstrip("0") + "s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    # written out (JSON, YAML export) in the file's form, so what the API answers can be
    # pasted into the file and back
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _DURATION.pattern},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration: 250ms, 30s, 5m, 1h, 2d, or a number of seconds",
        },
        mode="validation",
    ),
    WithJsonSchema(
        {"type": "string", "description": "A duration: 250ms, 30s, 5m, 1h or 2d"},
        mode="serialization",
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\- ]+$")]
Threshold = Annotated[float, Field(allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


def compiles(value: str) -> str:
    """A template that does not parse is refused with the configuration, not at 3 a.m."""
    if value:
        try:
            SandboxedEnvironment().parse(value)
        except TemplateSyntaxError as exc:
            raise ValueError(f"template line {exc.lineno}: {exc.message}") from None
        except RecursionError:
            raise ValueError("template nests too deeply") from None
    return value
