"""Maintenance windows: the file's and the API's, read from CONFIG; changes sent to the
alerts service, their owner. The list shows each window's occurrences in a range, so a
window is visible ahead of time. ``router`` and ``PROJECTIONS`` for the app."""

from services.gateway.maintenance.projector import PROJECTIONS
from services.gateway.maintenance.router import router

__all__ = ["PROJECTIONS", "router"]
