"""Silences: read from SILENCES; made and expired through the alerts service, their owner.

Two routers over the same read model: ``router`` under ``/api/monitoring/silences`` and
``alertmanager`` at Alertmanager's v2 paths (``/api/v2/silences``, ``/api/v2/silence/{id}``),
so ``amtool`` and scripts written for Alertmanager work against Vigil unchanged.
"""

from services.gateway.silences.projector import PROJECTIONS
from services.gateway.silences.router import alertmanager, router

__all__ = ["PROJECTIONS", "alertmanager", "router"]
