"""PromQL over Vigil's metrics store: parsed by ``promql-parser``, evaluated with numpy."""

from .body import prometheus_body
from .engine import Engine
from .errors import PromQLError
from .result import Result

__all__ = ["Engine", "PromQLError", "Result", "prometheus_body"]
