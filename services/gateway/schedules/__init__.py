"""On-call schedules: the file's and the API's, read from CONFIG; changes sent to the
notifier, their owner. ``router`` and ``PROJECTIONS`` for the app."""

from services.gateway.schedules.projector import PROJECTIONS
from services.gateway.schedules.router import router

__all__ = ["PROJECTIONS", "router"]
